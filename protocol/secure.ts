/**
 * The encrypted session after the handshake (SPEC §6). Both sides contribute a fresh X25519 key pair
 * per connection (in the challenge and the hello, both covered by signatures), so a recorded session
 * cannot be decrypted later even with both machines' long-term keys (forward secrecy).
 *
 * Two cipher suites, chosen by the negotiated protocol (`sessionCipher`, `replicationCipher`):
 *
 *   chacha20-poly1305 (session protocol 4, replication protocol 3), all through Node's crypto (OpenSSL):
 *     shared   = X25519(my ephemeral secret, peer ephemeral public)
 *     keys     = SHA-512(label ‖ shared ‖ SHA-512(transcript)) → client→server ‖ server→client
 *     frame i  = ChaCha20-Poly1305 (RFC 8439): ciphertext ‖ 16-byte tag, nonce = 4 zero bytes ‖ i as
 *                64-bit big-endian
 *   xsalsa20-poly1305 (older protocols; what a peer of older firmware speaks), through tweetnacl:
 *     shared   = HSalsa20(X25519(…)) (nacl.box.before)
 *     keys     = SHA-512(shared ‖ SHA-512(transcript))
 *     frame i  = XSalsa20-Poly1305 (nacl.secretbox): tag ‖ ciphertext, nonce = i as 64-bit big-endian
 *
 * The key agreement is always OpenSSL's X25519 (the ephemeral pairs are Node key objects); an older
 * suite only adds tweetnacl's HSalsa20 on top, so the same ephemeral key serves a peer of either suite.
 * The counter is implicit: each side counts the frames it sent and received. A replayed, reordered,
 * dropped, truncated or altered frame fails authentication and is FRAME_TAMPERED. Cost per frame: the
 * 16-byte tag; no signature is ever computed per change.
 */
import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { MfpError } from './errors.js';

/** Bytes a sealed frame adds to its plaintext (the Poly1305 tag, in either suite). */
export const SEAL_OVERHEAD = 16;

/** The per-frame AEAD of a session. */
export type Cipher = 'chacha20-poly1305' | 'xsalsa20-poly1305';

/** Both suites, newest first. */
export const CIPHERS: readonly Cipher[] = ['chacha20-poly1305', 'xsalsa20-poly1305'];

/** The session protocol from which frames are sealed with ChaCha20-Poly1305. */
export const CHACHA_PROTOCOL = 4;
/** The replication protocol from which frames are sealed with ChaCha20-Poly1305. */
export const CHACHA_REPLICATION_PROTOCOL = 3;

/** The cipher of a sync session of the negotiated protocol. */
export function sessionCipher(protocol: number): Cipher {
  return protocol >= CHACHA_PROTOCOL ? 'chacha20-poly1305' : 'xsalsa20-poly1305';
}

/** The cipher of a replication session of the negotiated replication protocol. */
export function replicationCipher(protocol: number): Cipher {
  return protocol >= CHACHA_REPLICATION_PROTOCOL ? 'chacha20-poly1305' : 'xsalsa20-poly1305';
}

/** One connection's ephemeral X25519 key pair: the public key as sent on the wire, the secret kept in OpenSSL. */
export interface EphemeralKeyPair {
  publicKey: Uint8Array;
  privateKey: KeyObject;
}

/** DER prefix of an X25519 SubjectPublicKeyInfo: the raw 32-byte key follows. */
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const KEY_BYTES = 32;

/** A fresh X25519 key pair for one connection. */
export function ephemeralKeyPair(): EphemeralKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return { publicKey: new Uint8Array(spki.subarray(X25519_SPKI.length)), privateKey };
}

/** Which end of the connection this is. */
export type ChannelSide = 'client' | 'server';

/** Label of the ChaCha20-Poly1305 suite's key derivation (domain separation from the older suite). */
const CHACHA_LABEL = Buffer.from('mfpsync session keys: x25519, chacha20-poly1305\0');
/** HSalsa20's constant, "expand 32-byte k", as nacl.box.before uses it. */
const SIGMA = new Uint8Array(Buffer.from('expand 32-byte k'));

/** tweetnacl's HSalsa20 core (its typings leave `lowlevel` out). */
const hsalsa20 = (nacl as unknown as { lowlevel: { crypto_core_hsalsa20(out: Uint8Array, input: Uint8Array, key: Uint8Array, constant: Uint8Array): number } }).lowlevel.crypto_core_hsalsa20;

/** X25519 of this side's secret and the peer's public key; a degenerate result is refused. */
function agree(mine: EphemeralKeyPair, peerPublic: Uint8Array): Buffer {
  if (peerPublic.length !== KEY_BYTES) throw new MfpError('MESSAGE_INVALID', 'ephemeral key must be 32 bytes');
  try {
    const publicKey = createPublicKey({ key: Buffer.concat([X25519_SPKI, peerPublic]), format: 'der', type: 'spki' });
    // OpenSSL refuses an all-zero result (a low-order point): the peer would have chosen a known key.
    return diffieHellman({ privateKey: mine.privateKey, publicKey });
  } catch {
    throw new MfpError('AUTH_INCORRECT', 'the peer\'s ephemeral key is degenerate');
  }
}

/** One direction's sealing and opening, with its key and the frame number as nonce. */
interface FrameCipher {
  seal(plaintext: Uint8Array, counter: number): Uint8Array;
  /** The plaintext, or null when the frame fails authentication. */
  open(sealed: Uint8Array, counter: number): Uint8Array | null;
}

/** ChaCha20-Poly1305 through OpenSSL: ciphertext ‖ tag. */
function chachaCipher(key: Buffer): FrameCipher {
  const nonce = Buffer.alloc(12);
  const setNonce = (counter: number): Buffer => {
    nonce.writeBigUInt64BE(BigInt(counter), 4);
    return nonce;
  };
  return {
    seal(plaintext, counter) {
      const c = createCipheriv('chacha20-poly1305', key, setNonce(counter), { authTagLength: SEAL_OVERHEAD });
      const body = c.update(plaintext);
      c.final();
      return Buffer.concat([body, c.getAuthTag()], body.length + SEAL_OVERHEAD);
    },
    open(sealed, counter) {
      const end = sealed.length - SEAL_OVERHEAD;
      const d = createDecipheriv('chacha20-poly1305', key, setNonce(counter), { authTagLength: SEAL_OVERHEAD });
      d.setAuthTag(sealed.subarray(end));
      const body = d.update(sealed.subarray(0, end));
      try {
        d.final();
      } catch {
        return null;
      }
      return body;
    },
  };
}

/** XSalsa20-Poly1305 through tweetnacl (nacl.secretbox): tag ‖ ciphertext. */
function xsalsaCipher(key: Uint8Array): FrameCipher {
  const nonceOf = (counter: number): Uint8Array => {
    const nonce = new Uint8Array(nacl.secretbox.nonceLength);
    new DataView(nonce.buffer).setBigUint64(16, BigInt(counter));
    return nonce;
  };
  return {
    seal: (plaintext, counter) => nacl.secretbox(plaintext, nonceOf(counter), key),
    open: (sealed, counter) => nacl.secretbox.open(sealed, nonceOf(counter), key),
  };
}

/** One connection's pair of directional keys and frame counters. */
export class SecureChannel {
  readonly cipher: Cipher;
  readonly #send: FrameCipher;
  readonly #receive: FrameCipher;
  #sent = 0;
  #received = 0;

  private constructor(cipher: Cipher, send: FrameCipher, receive: FrameCipher) {
    this.cipher = cipher;
    this.#send = send;
    this.#receive = receive;
  }

  /**
   * Derives the session keys from this side's ephemeral secret, the peer's ephemeral public key and
   * the handshake transcript (so keys are bound to exactly this exchange), for the negotiated cipher.
   */
  static derive(side: ChannelSide, mine: EphemeralKeyPair, peerPublic: Uint8Array, transcript: readonly Uint8Array[], cipher: Cipher): SecureChannel {
    const shared = agree(mine, peerPublic);
    const t = createHash('sha512');
    for (const part of transcript) t.update(part);
    const kdf = createHash('sha512');
    if (cipher === 'chacha20-poly1305') {
      kdf.update(CHACHA_LABEL).update(shared);
    } else {
      const before = new Uint8Array(KEY_BYTES);
      hsalsa20(before, new Uint8Array(16), shared, SIGMA);
      kdf.update(before);
    }
    const keys = kdf.update(t.digest()).digest();
    const c2s = keys.subarray(0, KEY_BYTES);
    const s2c = keys.subarray(KEY_BYTES, 2 * KEY_BYTES);
    const make = cipher === 'chacha20-poly1305' ? chachaCipher : xsalsaCipher;
    return side === 'client' ? new SecureChannel(cipher, make(c2s), make(s2c)) : new SecureChannel(cipher, make(s2c), make(c2s));
  }

  /** Frames sealed and opened so far. */
  get counts(): { sent: number; received: number } {
    return { sent: this.#sent, received: this.#received };
  }

  /** Encrypts and authenticates the next outgoing frame. */
  seal(plaintext: Uint8Array): Uint8Array {
    return this.#send.seal(plaintext, this.#sent++);
  }

  /** Authenticates and decrypts the next incoming frame; anything but the expected frame is FRAME_TAMPERED. */
  open(sealed: Uint8Array): Uint8Array {
    const plain = sealed.length >= SEAL_OVERHEAD ? this.#receive.open(sealed, this.#received) : null;
    if (!plain) {
      throw new MfpError('FRAME_TAMPERED', `frame ${this.#received} failed authentication: it was altered, replayed, reordered or truncated`);
    }
    this.#received++;
    return plain;
  }
}
