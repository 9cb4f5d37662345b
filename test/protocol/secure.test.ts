/**
 * The sealed session (protocol/secure.ts): a replay — sealed bytes the receiving side already accepted,
 * offered to it again — is refused with FRAME_TAMPERED, at once or any number of frames later, within
 * the session or into another one, and reflected back to its sender; the session goes on after each
 * refusal. (The fuzz test's reordering offers frame n+1 where n is expected: a frame never opened.)
 */
import { createDecipheriv, createHash, createPublicKey, diffieHellman } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { MfpError } from '../../protocol/errors.js';
import { CIPHERS, ephemeralKeyPair, SecureChannel, type Cipher } from '../../protocol/secure.js';

const transcript = [Buffer.from('challenge frame'), Buffer.from('hello body')];

/** Both ends of one session, derived as the handshake derives them. */
function session(cipher: Cipher): { client: SecureChannel; server: SecureChannel } {
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  return { client: SecureChannel.derive('client', c, s.publicKey, transcript, cipher), server: SecureChannel.derive('server', s, c.publicKey, transcript, cipher) };
}

const frame = (i: number) => Buffer.from(`frame ${i}: changes of user ${i}`);

/** Asserts that opening `sealed` is refused as FRAME_TAMPERED, naming the frame the receiver expects. */
function refused(t: ExecutionContext, receiver: SecureChannel, sealed: Uint8Array, expected: number, label: string): void {
  const before = receiver.counts.received;
  const err = t.throws(() => receiver.open(sealed), { instanceOf: MfpError }, label);
  t.is(err?.code, 'FRAME_TAMPERED', label);
  t.is(err?.message, `frame ${expected} failed authentication: it was altered, replayed, reordered or truncated`, label);
  t.is(receiver.counts.received, before, `${label}: a refused frame does not move the counter`);
}

for (const cipher of CIPHERS) test(`${cipher}: a frame the server accepted, offered to it again at once, is FRAME_TAMPERED; the next frame still opens`, (t) => {
  const { client, server } = session(cipher);
  const first = client.seal(frame(0));
  const second = client.seal(frame(1));
  t.deepEqual(Buffer.from(server.open(first)), frame(0));
  refused(t, server, first, 1, 'frame 0 again');
  // The same bytes once more, and a copy of them (not the same buffer): still refused.
  refused(t, server, first, 1, 'frame 0 a third time');
  refused(t, server, Uint8Array.from(first), 1, 'a copy of frame 0');
  t.deepEqual(Buffer.from(server.open(second)), frame(1));
  t.deepEqual(server.counts, { sent: 0, received: 2 });
});

for (const cipher of CIPHERS) test(`${cipher}: every frame the server accepted is refused when replayed later, however many frames later`, (t) => {
  const { client, server } = session(cipher);
  const sealed = Array.from({ length: 20 }, (_, i) => client.seal(frame(i)));
  for (let k = 0; k < sealed.length; k++) {
    t.deepEqual(Buffer.from(server.open(sealed[k]!)), frame(k));
    // Each frame opened so far, replayed while frame k+1 is expected.
    for (let j = 0; j <= k; j++) refused(t, server, sealed[j]!, k + 1, `frame ${j} replayed after frame ${k}`);
  }
  t.is(server.counts.received, 20);
});

for (const cipher of CIPHERS) test(`${cipher}: the client refuses a replay of a frame of the server just the same`, (t) => {
  const { client, server } = session(cipher);
  const welcomeNext = server.seal(frame(0));
  t.deepEqual(Buffer.from(client.open(welcomeNext)), frame(0));
  refused(t, client, welcomeNext, 1, 'server frame 0 again');
  t.deepEqual(Buffer.from(client.open(server.seal(frame(1)))), frame(1));
});

for (const cipher of CIPHERS) test(`${cipher}: a frame recorded in one session and replayed into another, at the same counter, is FRAME_TAMPERED`, (t) => {
  const recorded = session(cipher);
  const sealed = recorded.client.seal(frame(0));
  t.deepEqual(Buffer.from(recorded.server.open(sealed)), frame(0));
  const next = session(cipher);
  refused(t, next.server, sealed, 0, 'frame 0 of an earlier session');
  t.deepEqual(Buffer.from(next.server.open(next.client.seal(frame(0)))), frame(0));
});

for (const cipher of CIPHERS) test(`${cipher}: a frame reflected back to its sender is FRAME_TAMPERED: each direction has its own key`, (t) => {
  const { client, server } = session(cipher);
  const toServer = client.seal(frame(0));
  t.deepEqual(Buffer.from(server.open(toServer)), frame(0));
  // The server's next incoming frame would be 1; its own frame 0 came back to it instead.
  const fromServer = server.seal(frame(0));
  refused(t, server, fromServer, 1, 'the server\'s own frame');
  refused(t, client, toServer, 0, 'the client\'s own frame');
  t.deepEqual(Buffer.from(client.open(fromServer)), frame(0));
});

test('a frame sealed with one suite does not open with the other', (t) => {
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  const chacha = SecureChannel.derive('client', c, s.publicKey, transcript, 'chacha20-poly1305');
  const xsalsa = SecureChannel.derive('server', s, c.publicKey, transcript, 'xsalsa20-poly1305');
  refused(t, xsalsa, chacha.seal(frame(0)), 0, 'a ChaCha20-Poly1305 frame offered to an XSalsa20-Poly1305 receiver');
  t.is(chacha.cipher, 'chacha20-poly1305');
  t.is(xsalsa.cipher, 'xsalsa20-poly1305');
});

test('ChaCha20-Poly1305 frames are RFC 8439: ciphertext then a 16-byte tag, the nonce the frame number', (t) => {
  // The receiver's key, derived the way the module derives it, opens frame 1 with Node's own decipher:
  // the layout other firmware must implement.
  const c = ephemeralKeyPair();
  const s = ephemeralKeyPair();
  const client = SecureChannel.derive('client', c, s.publicKey, transcript, 'chacha20-poly1305');
  const shared = diffieHellman({ privateKey: s.privateKey, publicKey: createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), c.publicKey]), format: 'der', type: 'spki' }) });
  const t2 = createHash('sha512');
  for (const part of transcript) t2.update(part);
  const keys = createHash('sha512').update('mfpsync session keys: x25519, chacha20-poly1305\0').update(shared).update(t2.digest()).digest();
  client.seal(frame(0));
  const sealed = client.seal(frame(1));
  t.is(sealed.length, frame(1).length + 16);
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64BE(1n, 4);
  const d = createDecipheriv('chacha20-poly1305', keys.subarray(0, 32), nonce, { authTagLength: 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  t.deepEqual(Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]), frame(1));
});

test('an ephemeral key of a low-order point is refused as degenerate in both suites', (t) => {
  const mine = ephemeralKeyPair();
  for (const cipher of CIPHERS) {
    for (const point of [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)])]) {
      const err = t.throws(() => SecureChannel.derive('server', mine, point, transcript, cipher), { instanceOf: MfpError });
      t.is(err?.code, 'AUTH_INCORRECT');
    }
    t.is(t.throws(() => SecureChannel.derive('server', mine, new Uint8Array(31), transcript, cipher), { instanceOf: MfpError })?.code, 'MESSAGE_INVALID');
  }
});
