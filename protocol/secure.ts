/**
 * The encrypted session after the handshake (SPEC §6). Both sides contribute a fresh X25519 key pair
 * per connection (in the challenge and the hello, both covered by signatures), so a recorded session
 * cannot be decrypted later even with both machines' long-term keys (forward secrecy).
 *
 *   shared   = X25519(my ephemeral secret, peer ephemeral public), through HSalsa20 (nacl.box.before)
 *   keys     = SHA-512(shared ‖ SHA-512(challenge frame ‖ hello body)) → client→server ‖ server→client
 *   frame i  = XSalsa20-Poly1305(plaintext, key of the direction, nonce = i as 64-bit big-endian)
 *
 * The counter is implicit: each side counts the frames it sent and received. A replayed, reordered,
 * dropped, truncated or altered frame fails authentication and is FRAME_TAMPERED. Cost per frame: the
 * 16-byte tag; no signature is ever computed per change.
 */
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { MfpError } from './errors.js';

/** Bytes a sealed frame adds to its plaintext. */
export const SEAL_OVERHEAD = nacl.secretbox.overheadLength;

/** A fresh X25519 key pair for one connection. */
export function ephemeralKeyPair(): nacl.BoxKeyPair {
  return nacl.box.keyPair();
}

/** Which end of the connection this is. */
export type ChannelSide = 'client' | 'server';

/** One connection's pair of directional keys and frame counters. */
export class SecureChannel {
  readonly #sendKey: Uint8Array;
  readonly #receiveKey: Uint8Array;
  #sent = 0;
  #received = 0;

  private constructor(sendKey: Uint8Array, receiveKey: Uint8Array) {
    this.#sendKey = sendKey;
    this.#receiveKey = receiveKey;
  }

  /**
   * Derives the session keys from this side's ephemeral secret, the peer's ephemeral public key and
   * the handshake transcript (so keys are bound to exactly this exchange).
   */
  static derive(side: ChannelSide, mine: nacl.BoxKeyPair, peerPublic: Uint8Array, transcript: readonly Uint8Array[]): SecureChannel {
    if (peerPublic.length !== nacl.box.publicKeyLength) throw new MfpError('MESSAGE_INVALID', 'ephemeral key must be 32 bytes');
    // An all-zero X25519 result means the peer sent a low-order point: refuse rather than use a known key.
    if (nacl.scalarMult(mine.secretKey, peerPublic).every((b) => b === 0)) {
      throw new MfpError('AUTH_INCORRECT', 'the peer\'s ephemeral key is degenerate');
    }
    const shared = nacl.box.before(peerPublic, mine.secretKey);
    const t = createHash('sha512');
    for (const part of transcript) t.update(part);
    const keys = createHash('sha512').update(shared).update(t.digest()).digest();
    const c2s = keys.subarray(0, 32);
    const s2c = keys.subarray(32, 64);
    return side === 'client' ? new SecureChannel(c2s, s2c) : new SecureChannel(s2c, c2s);
  }

  /** Frames sealed and opened so far. */
  get counts(): { sent: number; received: number } {
    return { sent: this.#sent, received: this.#received };
  }

  /** Encrypts and authenticates the next outgoing frame. */
  seal(plaintext: Uint8Array): Uint8Array {
    return nacl.secretbox(plaintext, nonceOf(this.#sent++), this.#sendKey);
  }

  /** Authenticates and decrypts the next incoming frame; anything but the expected frame is FRAME_TAMPERED. */
  open(sealed: Uint8Array): Uint8Array {
    const plain = sealed.length >= SEAL_OVERHEAD ? nacl.secretbox.open(sealed, nonceOf(this.#received), this.#receiveKey) : null;
    if (!plain) {
      throw new MfpError('FRAME_TAMPERED', `frame ${this.#received} failed authentication: it was altered, replayed, reordered or truncated`);
    }
    this.#received++;
    return plain;
  }
}

function nonceOf(counter: number): Uint8Array {
  const nonce = new Uint8Array(nacl.secretbox.nonceLength);
  new DataView(nonce.buffer).setBigUint64(16, BigInt(counter));
  return nonce;
}
