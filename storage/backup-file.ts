/**
 * The server's backup file (SPEC §10): the group database whole, as the store's raw key/value pairs,
 * and the group's Ed25519 secret key sealed for the group's administrator — never in clear, and never
 * openable with a member device's key. Framed as the export file is (framed-file.ts). Layout (integers
 * big-endian):
 *
 *   magic     8 bytes   89 4D 46 50 42 0D 0A 1A — "\x89MFPB\r\n\x1a" (an export file's fifth byte is X)
 *   format    u16       BACKUP_FORMAT (2); everything after this field may change with the format
 *   hlen      u32       length of the header
 *   header    MessagePack map: software, createdAt (ms), groupId, groupKey (the group's Ed25519 public
 *                       key, 32 bytes), epoch, seq, counts {users, groups, devices, items, entries},
 *                       admin {user, salt (16 bytes), nonce (24 bytes), box}, bodyBytes
 *   body      MessagePack array of [key, value] pairs: keys strings, strictly increasing in UTF-8 byte
 *                       order (the store's order), values bin — the stored bytes, not decoded
 *   checksum  32 bytes  SHA-256 of everything before it
 *   signature 64 bytes  the group key's Ed25519 signature over everything before it, checksum included
 *
 * The signature is made as agent/identity.ts signParts makes the handshake's: Ed25519 over the SHA-512
 * of the signed bytes. Hashed by Node rather than inside tweetnacl, which would copy a 256 MiB file
 * twice and hash it in JavaScript (about 13 s). The magic begins the signed bytes, so a backup's
 * signature cannot pass for a handshake's, whose signed bytes begin with a MessagePack frame.
 *
 * Sealing (format 2): the administrator account's SCRAM server key — serverKey = HMAC(scrypt(password,
 * salt), "server"), agent/identity.ts — which the server keeps and the administrator recomputes from
 * the password and the `admin.salt` written here, but which never crosses the wire (the handshake sends
 * only HMACs keyed with it) and which no client holds. The sealing key is HKDF-SHA256(serverKey, salt,
 * "mfpsync backup group key" ‖ user ‖ groupId ‖ group public key), so a seal opens only for that account
 * and that group; the 64-byte group secret key is boxed with it (nacl.secretbox, a fresh nonce per file).
 * A backup needs no password to be written; the server that wrote it opens it with the server key it
 * keeps; any other machine, with the administrator's user id and password as they were at the backup.
 *
 * Format 1 (still read, no longer written) sealed the group secret key to every member device: each
 * recipient's Ed25519 public key converted to X25519 (ed2curve), boxed (nacl.box) from one ephemeral
 * key pair per file (`sealed.ephemeral`), a fresh nonce per recipient. Such a file is restored only by
 * a machine it was sealed to and that trusts its group key, as before.
 *
 * Reading verifies everything before it returns anything, in this order, each a BackupFileError with
 * its reason: magic ('foreign-program'), format ('format'), lengths ('truncated'; trailing bytes
 * 'damaged'), checksum ('damaged'), the signature by the header's group key ('signature'); then format
 * 2: an administrator key for the sealed account ('no-account'), that opens the seal ('wrong-password')
 * — an opened seal is the trust: only the server and its administrator make one — or format 1: that
 * key among the trusted ones ('foreign-group'), a box for this device that opens ('not-a-recipient');
 * the opened secret being the group key's ('signature'), the body's shape and counts ('shape').
 */
import { hkdfSync } from 'node:crypto';
import ed2curve from 'ed2curve';
import nacl from 'tweetnacl';
import { fingerprintOf, signParts, verifyParts } from '../agent/identity.js';
import { MfpError } from '../protocol/errors.js';
import { MAX_GROUP_DEVICES } from '../protocol/limits.js';
import { bin, fields, int, invalid as invalidField, isFields, list, str, type Fields } from '../protocol/validate.js';
import { writeFileAtomic } from './atomic-file.js';
import {
  asBuffer, CHECKSUM_BYTES, frameFile, packBody, PREAMBLE_BYTES, readFileBounded, readFramed, readHead, shaped, unpack,
  type FileFault, type FileKind,
} from './framed-file.js';
import { compareKeys } from './kv.js';

/** The file's first 8 bytes. */
export const BACKUP_MAGIC: Uint8Array = Uint8Array.from([0x89, 0x4d, 0x46, 0x50, 0x42, 0x0d, 0x0a, 0x1a]);
/** The format this build writes. */
export const BACKUP_FORMAT = 2;
/** The oldest format this build reads: 1, whose group key is sealed to member devices. */
export const OLDEST_BACKUP_FORMAT = 1;
/** Largest header accepted: a few short strings, counts and at most 10 sealed keys. */
export const MAX_BACKUP_HEADER_BYTES = 64 * 1024;
/** Largest backup file written or read (read whole into memory). */
export const MAX_BACKUP_BYTES = 256 * 1024 * 1024;

const SIGNATURE_BYTES = nacl.sign.signatureLength;
const KEY_BYTES = nacl.sign.publicKeyLength;
const SECRET_KEY_BYTES = nacl.sign.secretKeyLength;
const SEALED_BYTES = SECRET_KEY_BYTES + nacl.box.overheadLength;
const SALT_BYTES = 16;
const MAX_LABEL_BYTES = 256;
/** What MessagePack adds to an entry at least: array, string and bin headers. */
const MIN_ENTRY_OVERHEAD_BYTES = 1 + 1 + 2;

/**
 * Why a backup file was refused. `no-account`: no administrator key was given for the account the
 * group key is sealed for; `wrong-password`: the one given does not open it.
 */
export type BackupFault = FileFault | 'signature' | 'foreign-group' | 'not-a-recipient' | 'no-account' | 'wrong-password';

/** A backup file that is not to be restored, and why; nothing of such a file is returned. */
export class BackupFileError extends Error {
  readonly reason: BackupFault;

  constructor(reason: BackupFault, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackupFileError';
    this.reason = reason;
  }
}

/** What the database held, as the caller counted it; `entries` is the body's length and is checked. */
export interface BackupCounts {
  users: number;
  groups: number;
  devices: number;
  items: number;
  entries: number;
}

/** The group secret key sealed for the administrator account (format 2). */
export interface AdminSeal {
  user: string;
  /** The account's SCRAM salt when the backup was made. */
  salt: Uint8Array;
  nonce: Uint8Array;
  box: Uint8Array;
}

/** The group secret key sealed to one machine (format 1). */
export interface SealedKey {
  deviceId: string;
  nonce: Uint8Array;
  box: Uint8Array;
}

/** Where, when and of what a backup was made, and to whom its key is sealed. */
export interface BackupHeader {
  software: string;
  createdAt: number;
  groupId: string;
  /** The group's Ed25519 public key; the file is signed by its secret half. */
  groupKey: Uint8Array;
  epoch: string;
  seq: number;
  counts: BackupCounts;
  /** Format 2: the group secret key sealed for the administrator. */
  admin?: AdminSeal;
  /** Format 1: the group secret key sealed to each member device. */
  sealed?: { ephemeral: Uint8Array; keys: SealedKey[] };
}

/** A verified backup. */
export interface BackupFile {
  format: number;
  header: BackupHeader;
  /** The store's pairs in key order; the values are views into the bytes that were decoded. */
  entries: [string, Uint8Array][];
  /** The group's Ed25519 secret key (64 bytes), opened with the administrator's key (format 1: this device's). */
  groupSecretKey: Uint8Array;
}

/** The administrator account a backup's group key is sealed for: its user id, SCRAM salt and server key. */
export interface AdminKey {
  user: string;
  salt: Uint8Array;
  serverKey: Uint8Array;
}

/** What a backup is made of. */
export interface BackupInput {
  software: string;
  createdAt: number;
  groupId: string;
  groupKey: { publicKey: Uint8Array; secretKey: Uint8Array };
  epoch: string;
  seq: number;
  counts: Omit<BackupCounts, 'entries'>;
  /** The group administrator's account, as the server keeps it. */
  admin: AdminKey;
  /** The store's pairs, keys strictly increasing in the store's (UTF-8 byte) order. */
  entries: readonly (readonly [string, Uint8Array])[];
}

/** Who opens a backup. */
export interface BackupOpener {
  /**
   * Format 2: the server key of the account the file names, with the salt it names — the server's own,
   * when it is that account; else recomputed from a password — or undefined when there is none.
   */
  adminKey: (user: string, salt: Uint8Array) => Uint8Array | undefined;
  /** Format 1: this device's id and Ed25519 secret key (64 bytes), and the group keys it trusts. */
  deviceId: string;
  secretKey: Uint8Array;
  trustedGroupKeys: readonly Uint8Array[];
}

const BACKUP: FileKind = {
  name: 'backup',
  use: 'restore it',
  magic: BACKUP_MAGIC,
  format: BACKUP_FORMAT,
  oldestFormat: OLDEST_BACKUP_FORMAT,
  maxHeaderBytes: MAX_BACKUP_HEADER_BYTES,
  maxBytes: MAX_BACKUP_BYTES,
  trailerBytes: SIGNATURE_BYTES,
  invalid,
  tooLarge: (total) => new MfpError('DBBU06', `the backup would be ${total} bytes; the limit is ${MAX_BACKUP_BYTES}`),
};

/**
 * Encodes and signs a backup. Misuse is a TypeError (keys not strictly increasing, a malformed
 * administrator key, a group secret key that is not the public key's, a header that would not read
 * back); a file over MAX_BACKUP_BYTES is DBBU06.
 */
export function encodeBackupFile(input: BackupInput): Uint8Array {
  const { groupKey } = input;
  if (!isKeyPair(groupKey.secretKey, groupKey.publicKey)) throw new TypeError('groupKey.secretKey is not the secret half of groupKey.publicKey');
  // Bounded before the body is encoded: a store too large for a file is not copied once more first.
  const atLeast = PREAMBLE_BYTES + checkEntries(input.entries) + CHECKSUM_BYTES + SIGNATURE_BYTES;
  if (atLeast > MAX_BACKUP_BYTES) throw new MfpError('DBBU06', `the backup would be over ${atLeast} bytes; the limit is ${MAX_BACKUP_BYTES}`);
  const { users, groups, devices, items } = input.counts;
  const header = {
    software: input.software,
    createdAt: input.createdAt,
    groupId: input.groupId,
    groupKey: groupKey.publicKey,
    epoch: input.epoch,
    seq: input.seq,
    counts: { users, groups, devices, items, entries: input.entries.length },
    admin: seal(groupKey, input.groupId, input.admin),
  };
  try {
    readHeader(header, BACKUP_FORMAT);
  } catch (err) {
    throw new TypeError(`the backup header would not read back: ${(err as Error).message}`, { cause: err });
  }
  const out = frameFile(BACKUP, header, packBody(input.entries));
  const signedEnd = out.length - SIGNATURE_BYTES;
  out.set(signParts(groupKey.secretKey, out.subarray(0, signedEnd)), signedEnd);
  return out;
}

/**
 * Decodes and verifies a backup and opens its group key with this device's key. Anything wrong with
 * the file is a BackupFileError (see the reasons above); a malformed opener is a TypeError.
 */
export function decodeBackupFile(bytes: Uint8Array, opener: BackupOpener): BackupFile {
  if (typeof opener.adminKey !== 'function') throw new TypeError('opener.adminKey must be a function');
  if (!(opener.secretKey instanceof Uint8Array) || opener.secretKey.length !== SECRET_KEY_BYTES) throw new TypeError(`opener.secretKey must be a ${SECRET_KEY_BYTES}-byte Ed25519 secret key`);
  if (!Array.isArray(opener.trustedGroupKeys)) throw new TypeError('opener.trustedGroupKeys must be an array');
  const buf = asBuffer(bytes);
  const { format, header, body } = readFramed(BACKUP, buf, readHeader);
  const signedEnd = buf.length - SIGNATURE_BYTES;
  if (!verifyParts(header.groupKey, buf.subarray(signedEnd), buf.subarray(0, signedEnd))) {
    throw invalid('signature', `the signature is not by the group key the header names (${fingerprintOf(header.groupKey)})`);
  }
  const secret = header.admin ? openAdminSeal(header, header.admin, opener) : openMemberSeal(header, opener);
  if (!isKeyPair(secret, header.groupKey)) {
    secret.fill(0);
    throw invalid('signature', 'the sealed group secret key is not that of the group key that signed the file');
  }
  const groupSecretKey = secret;
  try {
    const entries = shaped(BACKUP, () => readEntries(unpack(BACKUP, body, 'body'), header.counts.entries));
    return { format, header, entries, groupSecretKey };
  } catch (err) {
    groupSecretKey.fill(0);
    throw err;
  }
}

/**
 * Reads a backup's header, from the whole file or from its first bytes (preamble and header): for
 * listing backups and showing what a restore would bring back before it is confirmed. Neither the
 * checksum nor the signature is checked — decodeBackupFile does that before anything is restored.
 */
export function readBackupHeader(bytes: Uint8Array): BackupHeader {
  return readHead(BACKUP, asBuffer(bytes), readHeader, { whole: false }).header;
}

/**
 * Writes a backup file atomically (writeFileAtomic: 0600, fsync, rename), leaving no temporary file on
 * failure: DBBU03 when the disk or quota is full, DBBU01 for any other failure.
 */
export async function writeBackupFile(path: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFileAtomic(path, bytes);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new MfpError('DBBU03', `not enough free space to write the backup ${path}: ${(err as Error).message}`, { cause: err });
    }
    throw new MfpError('DBBU01', `cannot write the backup ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads a backup file's bytes, at most MAX_BACKUP_BYTES, and checks its preamble: another program's
 * file (or not a regular file) is a BackupFileError 'foreign-program', a short one 'truncated'. Node's
 * I/O errors (ENOENT, EACCES, EIO …) are rethrown as they are.
 */
export function readBackupFile(path: string): Promise<Uint8Array> {
  return readFileBounded(BACKUP, path);
}

// ---- writing ---------------------------------------------------------------------------------------

/** Checks the pairs as reading will; returns the least their encoding takes, for the size bound. */
function checkEntries(entries: BackupInput['entries']): number {
  let bytes = 0;
  let prev: string | undefined;
  for (const [i, entry] of entries.entries()) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !(entry[1] instanceof Uint8Array)) {
      throw new TypeError(`entries[${i}] must be a [string, Uint8Array] pair`);
    }
    const [key, value] = entry;
    // A lone surrogate would be written as U+FFFD: the key would not read back.
    if (/\p{Surrogate}/u.test(key)) throw new TypeError(`entries[${i}]: the key ${JSON.stringify(key)} is not well-formed UTF-16`);
    if (prev !== undefined && compareKeys(prev, key) >= 0) {
      throw new TypeError(`entries[${i}]: the key ${JSON.stringify(key)} does not follow ${JSON.stringify(prev)} (keys must be strictly increasing)`);
    }
    prev = key;
    bytes += Buffer.byteLength(key) + value.length + MIN_ENTRY_OVERHEAD_BYTES;
  }
  return bytes;
}

/** The key a group's secret is sealed with: bound to the account, its salt and the group. */
function sealKey(serverKey: Uint8Array, salt: Uint8Array, user: string, groupId: string, groupKey: Uint8Array): Uint8Array {
  const info = Buffer.concat([Buffer.from('mfpsync backup group key\0'), Buffer.from(`${user}\0${groupId}\0`), groupKey]);
  return new Uint8Array(hkdfSync('sha256', serverKey, salt, info, nacl.secretbox.keyLength));
}

/** Seals the group secret key for the administrator account. */
function seal(groupKey: { publicKey: Uint8Array; secretKey: Uint8Array }, groupId: string, admin: AdminKey): AdminSeal {
  if (typeof admin?.user !== 'string' || admin.user === '') throw new TypeError('admin.user must be the administrator\'s user id');
  if (!(admin.salt instanceof Uint8Array) || admin.salt.length !== SALT_BYTES) throw new TypeError(`admin.salt must be the account's ${SALT_BYTES}-byte salt`);
  if (!(admin.serverKey instanceof Uint8Array) || admin.serverKey.length !== 32) throw new TypeError('admin.serverKey must be the account\'s 32-byte server key');
  const key = sealKey(admin.serverKey, admin.salt, admin.user, groupId, groupKey.publicKey);
  try {
    const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    return { user: admin.user, salt: Uint8Array.from(admin.salt), nonce, box: nacl.secretbox(groupKey.secretKey, nonce, key) };
  } finally {
    key.fill(0);
  }
}

// ---- reading ---------------------------------------------------------------------------------------

function invalid(reason: BackupFault, why: string, cause?: unknown): BackupFileError {
  return new BackupFileError(reason, `not a valid backup file: ${why}`, cause === undefined ? {} : { cause });
}

function readHeader(o: Fields, format: number): BackupHeader {
  const t = 'header';
  const counts = fields(t, o, 'counts');
  const c = 'header.counts';
  return {
    software: str(t, o, 'software', MAX_LABEL_BYTES),
    createdAt: int(t, o, 'createdAt'),
    groupId: str(t, o, 'groupId'),
    groupKey: copy(bin(t, o, 'groupKey', KEY_BYTES)),
    epoch: str(t, o, 'epoch'),
    seq: int(t, o, 'seq'),
    counts: {
      users: int(c, counts, 'users'),
      groups: int(c, counts, 'groups'),
      devices: int(c, counts, 'devices'),
      items: int(c, counts, 'items'),
      entries: int(c, counts, 'entries'),
    },
    ...(format >= 2 ? { admin: readAdminSeal(fields(t, o, 'admin')) } : { sealed: readMemberSeal(fields(t, o, 'sealed')) }),
  };
}

function readAdminSeal(o: Fields): AdminSeal {
  const a = 'header.admin';
  return {
    user: str(a, o, 'user', MAX_LABEL_BYTES),
    salt: copy(bin(a, o, 'salt', SALT_BYTES)),
    nonce: copy(bin(a, o, 'nonce', nacl.secretbox.nonceLength)),
    box: copy(bin(a, o, 'box', SECRET_KEY_BYTES + nacl.secretbox.overheadLength)),
  };
}

function readMemberSeal(sealed: Fields): NonNullable<BackupHeader['sealed']> {
  const s = 'header.sealed';
  const seen = new Set<string>();
  const keys = list(s, sealed, 'keys', MAX_GROUP_DEVICES).map((x, i) => {
    const k = `${s}.keys[${i}]`;
    if (!isFields(x)) return invalidField(s, `keys[${i}]`, 'must be a map');
    const deviceId = str(k, x, 'deviceId');
    if (seen.has(deviceId)) invalidField(k, 'deviceId', `${deviceId} appears twice`);
    seen.add(deviceId);
    return { deviceId, nonce: copy(bin(k, x, 'nonce', nacl.box.nonceLength)), box: copy(bin(k, x, 'box', SEALED_BYTES)) };
  });
  if (keys.length === 0) invalidField(s, 'keys', 'names no machine');
  return { ephemeral: copy(bin(s, sealed, 'ephemeral', nacl.box.publicKeyLength)), keys };
}

/** Format 2: opens the seal with the administrator's server key; one that opens is the file's trust. */
function openAdminSeal(header: BackupHeader, seal: AdminSeal, opener: BackupOpener): Uint8Array {
  const serverKey = opener.adminKey(seal.user, seal.salt);
  if (serverKey === undefined) {
    throw invalid('no-account', `its group key is sealed for the administrator account "${seal.user}" of group ${header.groupId} as it was on ${new Date(header.createdAt).toISOString()}: give that account (--user ID --password PW) with the password it had then`);
  }
  const key = sealKey(serverKey, seal.salt, seal.user, header.groupId, header.groupKey);
  const secret = nacl.secretbox.open(seal.box, seal.nonce, key);
  key.fill(0);
  if (secret === null) {
    throw invalid('wrong-password', `the administrator account given does not open its group key (sealed for "${seal.user}" of group ${header.groupId}, with the password it had when the backup was made, ${new Date(header.createdAt).toISOString()})`);
  }
  return secret;
}

/** Format 1: the group key must be trusted, and the box sealed to this device must open. */
function openMemberSeal(header: BackupHeader, opener: BackupOpener): Uint8Array {
  if (!opener.trustedGroupKeys.some((k) => sameBytes(k, header.groupKey))) {
    throw invalid('foreign-group', `it is signed by group key ${fingerprintOf(header.groupKey)}, which is not this group's`);
  }
  const keys = header.sealed!.keys;
  const sealed = keys.find((k) => k.deviceId === opener.deviceId);
  if (sealed === undefined) {
    throw invalid('not-a-recipient', `it is sealed to ${keys.map((k) => k.deviceId).join(', ')}, not to this device (${opener.deviceId})`);
  }
  const x25519 = ed2curve.convertSecretKey(opener.secretKey);
  const secret = nacl.box.open(sealed.box, sealed.nonce, header.sealed!.ephemeral, x25519);
  x25519.fill(0);
  if (secret === null) throw invalid('not-a-recipient', `the group key sealed to ${opener.deviceId} does not open with this device's key`);
  return secret;
}

/** The body: [key, value] pairs, keys strictly increasing, as many as the header counts. */
function readEntries(o: unknown, count: number): [string, Uint8Array][] {
  const bad = (why: string): never => {
    throw new MfpError('MESSAGE_INVALID', why);
  };
  if (!Array.isArray(o)) return bad('the body must be an array');
  if (o.length !== count) bad(`the header counts ${count} entries, the body holds ${o.length}`);
  let prev: string | undefined;
  for (const [i, entry] of o.entries()) {
    if (!Array.isArray(entry) || entry.length !== 2) bad(`body[${i}] must be a [key, value] pair`);
    const [key, value] = entry as unknown[];
    if (typeof key !== 'string') return bad(`body[${i}] has a key that is not a string`);
    if (!(value instanceof Uint8Array)) bad(`body[${i}] has a value that is not binary`);
    if (prev !== undefined && compareKeys(prev, key) >= 0) {
      bad(`body[${i}] has the key ${JSON.stringify(key)} after ${JSON.stringify(prev)}: keys must be strictly increasing`);
    }
    prev = key;
  }
  return o as [string, Uint8Array][];
}

// ---- keys ------------------------------------------------------------------------------------------

/** Whether a 64-byte Ed25519 secret key (seed ‖ public key) is the secret half of `publicKey`. */
function isKeyPair(secretKey: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_BYTES) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_BYTES) return false;
  // The public half is derived from the seed, not read from the key's second half, which could lie.
  const derived = nacl.sign.keyPair.fromSeed(secretKey.subarray(0, 32)).publicKey;
  return sameBytes(derived, publicKey) && sameBytes(secretKey.subarray(32), publicKey);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a instanceof Uint8Array && asBuffer(a).equals(b);
}

function copy(bytes: Uint8Array): Uint8Array {
  return Uint8Array.from(bytes);
}
