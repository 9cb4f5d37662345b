/**
 * Machine identity and administrator admission.
 *
 * Identity: an Ed25519 key pair (tweetnacl) made by `init`; the device id is the first 80 bits of
 * SHA-256 of the public key, in base32 — short, printable, and bound to the key.
 *
 * Admission (first connection of a client): SCRAM-style proofs both ways, so the password never crosses
 * the wire and the server never stores it: salted = scrypt(password, salt); clientKey = HMAC(salted,
 * "client"); storedKey = SHA-256(clientKey) and serverKey = HMAC(salted, "server") are what the server
 * keeps. The client sends proof = clientKey ⊕ HMAC(storedKey, nonce ‖ deviceId); the server recovers
 * clientKey and compares SHA-256(clientKey) with storedKey. The server answers
 * HMAC(serverKey, nonce ‖ deviceId ‖ group public key): a machine that does not hold this group's
 * administrator secret cannot pose as its server, even to a client that has pinned nothing yet.
 */
import { createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import nacl from 'tweetnacl';

/** A machine's signing identity. */
export interface Identity {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  deviceId: string;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** Derives the device id from a public key. */
export function deviceIdOf(publicKey: Uint8Array): string {
  const digest = createHash('sha256').update(publicKey).digest().subarray(0, 10);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** A public key's fingerprint as a technician reads it aloud: 16 hex digits of SHA-256, in fours. */
export function fingerprintOf(publicKey: Uint8Array): string {
  return (createHash('sha256').update(publicKey).digest('hex').slice(0, 16).match(/.{4}/g) ?? []).join('-');
}

/** Creates a fresh identity. */
export function createIdentity(): Identity {
  const kp = nacl.sign.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey, deviceId: deviceIdOf(kp.publicKey) };
}

/** Rebuilds an identity from its secret key. */
export function identityFromSecret(secretKey: Uint8Array): Identity {
  const kp = nacl.sign.keyPair.fromSecretKey(secretKey);
  return { publicKey: kp.publicKey, secretKey: kp.secretKey, deviceId: deviceIdOf(kp.publicKey) };
}

/** Signs the SHA-512 of the concatenated parts. */
export function signParts(secretKey: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return nacl.sign.detached(digest(parts), secretKey);
}

/** Verifies a signature made by signParts. */
export function verifyParts(publicKey: Uint8Array, sig: Uint8Array, ...parts: Uint8Array[]): boolean {
  return nacl.sign.detached.verify(digest(parts), sig, publicKey);
}

function digest(parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** What the server keeps of its administrator account. */
export interface AdminSecret {
  user: string;
  salt: string;
  storedKey: string;
  serverKey: string;
}

const SCRYPT = { N: 1 << 14, r: 8, p: 1 } as const;

function keysOf(password: string, salt: Uint8Array): { clientKey: Buffer; serverKey: Buffer } {
  const salted = scryptSync(password.normalize('NFKC'), salt, 32, SCRYPT);
  return { clientKey: createHmac('sha256', salted).update('client').digest(), serverKey: createHmac('sha256', salted).update('server').digest() };
}

function signatureOf(storedKey: Uint8Array, nonce: Uint8Array, deviceId: string): Buffer {
  return createHmac('sha256', storedKey).update(nonce).update(deviceId).digest();
}

/** Makes the stored form of an administrator password. */
export function makeAdminSecret(user: string, password: string): AdminSecret {
  const salt = randomBytes(16);
  const { clientKey, serverKey } = keysOf(password, salt);
  const storedKey = createHash('sha256').update(clientKey).digest();
  return { user, salt: salt.toString('base64'), storedKey: storedKey.toString('base64'), serverKey: serverKey.toString('base64') };
}

/**
 * The account's server key for a password and salt: what the server keeps (AdminSecret.serverKey),
 * recomputed by whoever knows the password. It never crosses the wire; backups seal the group key with it.
 */
export function serverKeyOf(password: string, salt: Uint8Array): Uint8Array {
  return keysOf(password, salt).serverKey;
}

/** The client's side of an admission: its proof, and the server proof it must receive back. */
export function admissionProof(password: string, salt: Uint8Array, nonce: Uint8Array, deviceId: string): { proof: Uint8Array; serverKey: Uint8Array } {
  const { clientKey, serverKey } = keysOf(password, salt);
  const storedKey = createHash('sha256').update(clientKey).digest();
  return { proof: xor(clientKey, signatureOf(storedKey, nonce, deviceId)), serverKey };
}

/** The server's proof that it holds the administrator secret, bound to the group key it presents. */
export function serverProof(serverKey: Uint8Array, nonce: Uint8Array, deviceId: string, groupKey: Uint8Array): Uint8Array {
  return createHmac('sha256', serverKey).update(nonce).update(deviceId).update(groupKey).digest();
}

/** Checks the server's proof in constant time. */
export function checkServerProof(expectedKey: Uint8Array, proof: Uint8Array, nonce: Uint8Array, deviceId: string, groupKey: Uint8Array): boolean {
  const expected = serverProof(expectedKey, nonce, deviceId, groupKey);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

/** Checks an admission proof in constant time. */
export function checkAdmission(secret: AdminSecret, user: string, proof: Uint8Array, nonce: Uint8Array, deviceId: string): boolean {
  const storedKey = Buffer.from(secret.storedKey, 'base64');
  const clientKey = xor(proof, signatureOf(storedKey, nonce, deviceId));
  const candidate = createHash('sha256').update(clientKey).digest();
  // Compared as fixed-length hashes: constant time, and no length mismatch for multi-byte names.
  const sameUser = timingSafeEqual(createHash('sha256').update(user).digest(), createHash('sha256').update(secret.user).digest());
  return timingSafeEqual(candidate, storedKey) && sameUser;
}

/** The device id a password login (the Remote UI's) binds its proof to: no device has it (ids are base32 of keys). */
const PASSWORD_LOGIN = 'password-login';

/**
 * Checks an administrator password against the stored verifier, for a surface that receives the
 * password itself (the Remote UI's login over HTTPS): the proof a device would send is made here, and
 * checked by the one admission check.
 */
export function checkPassword(secret: AdminSecret, user: string, password: string): boolean {
  const nonce = randomBytes(32);
  const { proof } = admissionProof(password, Buffer.from(secret.salt, 'base64'), nonce, PASSWORD_LOGIN);
  return checkAdmission(secret, user, proof, nonce, PASSWORD_LOGIN);
}

function xor(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}
