/**
 * Machine identity (device id, Ed25519 signatures over frame parts) and administrator admission
 * (SCRAM-style proof), without any agent running.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import nacl from 'tweetnacl';
import {
  admissionProof, checkAdmission, createIdentity, deviceIdOf, identityFromSecret, makeAdminSecret,
  serverProof,
  checkServerProof, signParts, verifyParts,
} from '../../agent/identity.js';
import { decodeMessage, decodeValue } from '../../protocol/codec.js';
import { challengeBytes, helloBodyBytes, welcomeBodyBytes } from '../protocol/fixtures.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const flipped = (b: Uint8Array, i: number): Uint8Array => {
  const out = Uint8Array.from(b);
  out[i] = out[i]! ^ 0x01;
  return out;
};
const fromSeed = (n: number) => identityFromSecret(nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(n)).secretKey);

/** RFC 4648 base32, lower case, of the first 80 bits of SHA-256: an independent reference for deviceIdOf. */
function referenceDeviceId(publicKey: Uint8Array): string {
  const head = createHash('sha256').update(publicKey).digest().subarray(0, 10);
  let n = BigInt('0x' + head.toString('hex'));
  let out = '';
  for (let i = 0; i < 16; i++) {
    out = 'abcdefghijklmnopqrstuvwxyz234567'[Number(n & 31n)] + out;
    n >>= 5n;
  }
  return out;
}

// ------------------------------------------------------------------------------------- device id

test('deviceIdOf is 16 characters of [a-z2-7], the base32 of the key hash, stable for a key', (t) => {
  for (let seed = 0; seed < 50; seed++) {
    const { publicKey } = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(seed));
    const id = deviceIdOf(publicKey);
    t.regex(id, /^[a-z2-7]{16}$/);
    t.is(id, referenceDeviceId(publicKey));
    t.is(deviceIdOf(Uint8Array.from(publicKey)), id);
  }
  // Pinned: a device id is stored on every machine of the group and must never change between builds.
  t.is(deviceIdOf(new Uint8Array(32)), referenceDeviceId(new Uint8Array(32)));
  t.is(deviceIdOf(new Uint8Array(32)), 'mzuhvlpymk6xo3ep');
});

test('different keys give different device ids, even one bit apart', (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(createIdentity().deviceId);
  t.is(seen.size, 200);
  const key = createIdentity().publicKey;
  t.not(deviceIdOf(key), deviceIdOf(flipped(key, 31)));
});

// -------------------------------------------------------------------------------------- identity

test('createIdentity makes a fresh Ed25519 key pair whose device id is derived from the public key', (t) => {
  const a = createIdentity();
  const b = createIdentity();
  t.is(a.publicKey.length, 32);
  t.is(a.secretKey.length, 64);
  t.is(a.deviceId, deviceIdOf(a.publicKey));
  t.notDeepEqual(a.publicKey, b.publicKey);
  t.not(a.deviceId, b.deviceId);
});

test('identityFromSecret rebuilds the same identity', (t) => {
  const a = createIdentity();
  const back = identityFromSecret(Uint8Array.from(a.secretKey));
  t.deepEqual(back.publicKey, a.publicKey);
  t.deepEqual(back.secretKey, a.secretKey);
  t.is(back.deviceId, a.deviceId);
  // The rebuilt key signs what the original verifies.
  t.true(verifyParts(a.publicKey, signParts(back.secretKey, bytes('x')), bytes('x')));
});

// ------------------------------------------------------------------------------------ signatures

const signer = fromSeed(7);
const other = fromSeed(8);
const parts = [challengeBytes, helloBodyBytes, welcomeBodyBytes] as const;
const sig = signParts(signer.secretKey, ...parts);

test('verifyParts accepts the signature of signParts', (t) => {
  t.is(sig.length, 64);
  t.true(verifyParts(signer.publicKey, sig, ...parts));
  // Ed25519 is deterministic: the same parts give the same signature.
  t.deepEqual(signParts(signer.secretKey, ...parts), sig);
});

test('verifyParts refuses one bit flipped in any part: its head, its tail and every 11th byte between', (t) => {
  // Not every byte: tweetnacl verifies in pure JavaScript (~5 ms each) and the parts are 1.4 kB.
  const accepted: string[] = [];
  let tried = 0;
  parts.forEach((part, p) => {
    for (let i = 0; i < part.length; i++) {
      if (!(i < 32 || i >= part.length - 8 || i % 11 === 0)) continue;
      tried++;
      const changed = parts.map((x, q) => (q === p ? flipped(x, i) : x));
      if (verifyParts(signer.publicKey, sig, ...changed)) accepted.push(`part ${p} byte ${i}`);
    }
  });
  t.true(tried > 200);
  t.deepEqual(accepted, []);
});

test('verifyParts refuses a flipped signature byte, another key, and a missing or extra part', (t) => {
  for (let i = 0; i < sig.length; i++) t.false(verifyParts(signer.publicKey, flipped(sig, i), ...parts), `sig byte ${i}`);
  t.false(verifyParts(other.publicKey, sig, ...parts));
  t.false(verifyParts(signer.publicKey, signParts(other.secretKey, ...parts), ...parts));
  t.false(verifyParts(signer.publicKey, sig, parts[0], parts[1]));
  t.false(verifyParts(signer.publicKey, sig, ...parts, new Uint8Array([0])));
  t.false(verifyParts(signer.publicKey, sig, parts[1], parts[0], parts[2]));
});

test('a signature of the wrong length is never accepted', (t) => {
  for (const bad of [sig.subarray(0, 63), new Uint8Array(0), new Uint8Array(65)]) {
    let ok: boolean;
    try {
      ok = verifyParts(signer.publicKey, bad, ...parts);
    } catch {
      ok = false; // tweetnacl throws on a bad size; the codec already requires 64 bytes
    }
    t.false(ok);
  }
});

/*
 * signParts hashes the plain concatenation of its parts, so where one part ends and the next begins is not
 * signed: ('ab', 'c') and ('a', 'bc') carry the same signature. This is safe for how mfpsync uses it because
 * every part is exactly one complete MessagePack value (the challenge frame, the hello body, the welcome
 * body): decodeMessage/decodeValue refuse trailing bytes, and MessagePack is prefix-free (a value's header
 * fixes where it ends), so a concatenation splits into complete values in exactly one way. The hazard is for
 * a future caller that signs parts of free length (names, raw strings): that caller must length-prefix them.
 */
test('signParts does not bind part boundaries: moving bytes between parts verifies (documented)', (t) => {
  const s = signParts(signer.secretKey, bytes('ab'), bytes('c'));
  t.true(verifyParts(signer.publicKey, s, bytes('a'), bytes('bc')));
  t.true(verifyParts(signer.publicKey, s, bytes('abc')));
  t.true(verifyParts(signer.publicKey, s, bytes('ab'), new Uint8Array(0), bytes('c')));
});

test('…which is safe for the handshake: any other split of challenge ‖ body is not two complete values', (t) => {
  const whole = Uint8Array.from([...challengeBytes, ...helloBodyBytes]);
  const splits: number[] = [];
  for (let cut = 0; cut <= whole.length; cut++) {
    let ok = true;
    try {
      decodeMessage(whole.subarray(0, cut));
      decodeValue(whole.subarray(cut));
    } catch {
      ok = false;
    }
    if (ok) splits.push(cut);
  }
  t.deepEqual(splits, [challengeBytes.length]);
});

// ------------------------------------------------------------------------------------- admission

const nonce = new Uint8Array(32).fill(0xa5);
const device = fromSeed(9).deviceId;
const secret = makeAdminSecret('admin', 'correct horse battery');
const salt = Buffer.from(secret.salt, 'base64');

test('admission: the right user and password are accepted', (t) => {
  const proof = admissionProof('correct horse battery', salt, nonce, device).proof;
  t.is(proof.length, 32);
  t.true(checkAdmission(secret, 'admin', proof, nonce, device));
});

test('admission: a wrong password is refused', (t) => {
  t.false(checkAdmission(secret, 'admin', admissionProof('correct horse batterz', salt, nonce, device).proof, nonce, device));
  t.false(checkAdmission(secret, 'admin', admissionProof('', salt, nonce, device).proof, nonce, device));
  t.false(checkAdmission(secret, 'admin', new Uint8Array(32), nonce, device));
});

test('admission: a wrong user is refused', (t) => {
  const proof = admissionProof('correct horse battery', salt, nonce, device).proof;
  for (const user of ['root', 'Admin', 'admin ', 'admi', '']) t.false(checkAdmission(secret, user, proof, nonce, device), user);
});

test('admission: a user name of the same length in UTF-16 but not in UTF-8 is refused, not thrown', (t) => {
  const proof = admissionProof('correct horse battery', salt, nonce, device).proof;
  // 'admín' is 5 UTF-16 units like 'admin' but 6 UTF-8 bytes: timingSafeEqual must not see unequal lengths.
  let result: unknown;
  try {
    result = checkAdmission(secret, 'admín', proof, nonce, device);
  } catch (err) {
    result = err;
  }
  t.false(result instanceof Error, `checkAdmission threw ${String(result)}`);
  t.is(result, false);
});

test('admission: a proof is bound to its nonce and to the device id', (t) => {
  const proof = admissionProof('correct horse battery', salt, nonce, device).proof;
  t.false(checkAdmission(secret, 'admin', proof, flipped(nonce, 0), device));
  t.false(checkAdmission(secret, 'admin', proof, nonce, fromSeed(10).deviceId));
  // Replayed into another handshake it fails; made for that handshake it passes.
  const nonce2 = new Uint8Array(32).fill(0x5a);
  t.false(checkAdmission(secret, 'admin', proof, nonce2, device));
  t.true(checkAdmission(secret, 'admin', admissionProof('correct horse battery', salt, nonce2, device).proof, nonce2, device));
});

test('admission: a proof made with another salt, or truncated, is refused', (t) => {
  const { proof } = admissionProof('correct horse battery', new Uint8Array(16), nonce, device);
  t.false(checkAdmission(secret, 'admin', proof, nonce, device));
  const good = admissionProof('correct horse battery', salt, nonce, device).proof;
  t.false(checkAdmission(secret, 'admin', good.subarray(0, 31), nonce, device));
});

test('admission: the password is normalized (NFKC), so a full-width form is the same password', (t) => {
  const s = makeAdminSecret('admin', 'pass1');
  const saltS = Buffer.from(s.salt, 'base64');
  t.true(checkAdmission(s, 'admin', admissionProof('ｐａｓｓ１', saltS, nonce, device).proof, nonce, device));
});

test('admission: the stored secret holds neither the password nor a salt reused between secrets', (t) => {
  const password = 'correct horse battery';
  const stored = JSON.stringify(secret);
  for (const form of [password, Buffer.from(password).toString('base64'), Buffer.from(password).toString('hex'), 'horse']) {
    t.false(stored.includes(form), form);
  }
  t.deepEqual(Object.keys(secret).sort(), ['salt', 'serverKey', 'storedKey', 'user']);
  t.is(salt.length, 16);
  t.is(Buffer.from(secret.storedKey, 'base64').length, 32);
  const again = makeAdminSecret('admin', password);
  t.not(again.salt, secret.salt);
  t.not(again.storedKey, secret.storedKey);
  // The proof itself is not the password either, and differs per nonce.
  const p1 = admissionProof(password, salt, nonce, device).proof;
  const p2 = admissionProof(password, salt, new Uint8Array(32), device);
  t.notDeepEqual(p1, p2);
  t.false(Buffer.from(p1).includes(Buffer.from(password)));
});

test('admission: the server proves it holds the administrator secret, bound to nonce, device and group key', (t) => {
  const { serverKey } = admissionProof('correct horse battery', salt, nonce, device);
  const groupKey = fromSeed(11).publicKey;
  const proof = serverProof(Buffer.from(secret.serverKey, 'base64'), nonce, device, groupKey);
  t.true(checkServerProof(serverKey, proof, nonce, device, groupKey));
  // A server that does not hold this secret, or presents another group key, or answers another exchange.
  const other = makeAdminSecret('admin', 'correct horse battery');
  t.false(checkServerProof(serverKey, serverProof(Buffer.from(other.serverKey, 'base64'), nonce, device, groupKey), nonce, device, groupKey));
  t.false(checkServerProof(serverKey, proof, nonce, device, fromSeed(12).publicKey));
  t.false(checkServerProof(serverKey, proof, flipped(nonce, 3), device, groupKey));
  t.false(checkServerProof(serverKey, proof, nonce, fromSeed(10).deviceId, groupKey));
  t.false(checkServerProof(serverKey, proof.subarray(0, 31), nonce, device, groupKey));
  // The client derives the same key only from the right password.
  t.false(checkServerProof(admissionProof('wrong', salt, nonce, device).serverKey, proof, nonce, device, groupKey));
});
