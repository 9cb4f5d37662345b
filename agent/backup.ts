/**
 * Backup and restore of the server's synchronization data (SPEC §10): where a backup goes (the
 * machine's own disk, one slot; an SMB share; or a folder given as a path, e.g. a USB stick), how each
 * failure maps to its DBBU/DBRS code, and the execution log. The file itself — signed, checksummed, the group key sealed — is storage/backup-file.ts;
 * taking the image and installing it is the agent's.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, rm, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { MfpError, type ErrorCode } from '../protocol/errors.js';
import { BackupFileError, decodeBackupFile, readBackupFile, writeBackupFile, type BackupFile } from '../storage/backup-file.js';
import type { LocalStore } from '../storage/local-store.js';
import { parseSmbUrl, SmbShare, smbErrorCode } from './smb.js';

/** The one file of the device slot. */
export const DEVICE_BACKUP_NAME = 'mfpsync-backup.mfpb';
/** Execution log entries kept. */
export const BACKUP_LOG_ENTRIES = 200;

/** Where a backup goes or comes from, parsed from `--to` / `--from`. */
export type BackupPlace =
  | { kind: 'device'; dir: string; path: string }
  | { kind: 'network'; url: string; share: SmbShare; name: string }
  /**
   * A folder or file on a mounted file system (a USB stick): `backup --to DIR` writes
   * `mfpsync-GROUP.mfpb` in it (or the `.mfpb` file named); `restore --from FILE|DIR` reads the file,
   * or the group's file in the folder.
   */
  | { kind: 'path'; given: string; groupId: string };

/** One line of `backup log`. */
export interface BackupLogEntry {
  at: number;
  op: 'backup' | 'restore' | 'recover';
  /** `device`, the SMB URL (never credentials), or the replica's address. */
  place: string;
  result: 'ok' | ErrorCode;
  message: string;
  bytes?: number;
  seq?: number;
}

/**
 * Parses a destination. A network one names a directory (the file is `mfpsync-GROUP.mfpb` in it) or,
 * ending in `.mfpb`, the file itself.
 */
export function parsePlace(text: string, options: { deviceDir: string; groupId: string; user?: string; password?: string }): BackupPlace {
  if (text === 'device') return { kind: 'device', dir: options.deviceDir, path: join(options.deviceDir, DEVICE_BACKUP_NAME) };
  if (!text.startsWith('smb://')) {
    // The shell makes a relative path absolute against its own working directory, not the agent's.
    if (!isAbsolute(text)) throw new MfpError('INVALID_ARGUMENT', `a backup goes to "device", smb://HOST/SHARE/DIR or an absolute path (a folder, e.g. a USB stick), not ${JSON.stringify(text)}`);
    return { kind: 'path', given: text, groupId: options.groupId };
  }
  if (options.user === undefined || options.password === undefined) throw new MfpError('USAGE', 'a network backup or restore needs the share\'s credentials: backup --user ID --password PW, restore --share-user ID --share-password PW');
  const fileGiven = text.endsWith('.mfpb');
  const cut = fileGiven ? text.lastIndexOf('/') : text.length;
  const dirUrl = text.slice(0, cut);
  parseSmbUrl(dirUrl);
  const name = fileGiven ? text.slice(cut + 1) : groupBackupName(options.groupId);
  return { kind: 'network', url: text, share: new SmbShare({ url: dirUrl, user: options.user, password: options.password }), name };
}

/** The code of a failure that has no better one: DBBU01/DBRS01 device, DBBU06/DBRS01 path, DBBU02/DBRS02 network. */
export function placeFailure(place: BackupPlace, op: 'backup' | 'restore'): ErrorCode {
  if (op === 'restore') return place.kind === 'network' ? 'DBRS02' : 'DBRS01';
  return place.kind === 'network' ? 'DBBU02' : place.kind === 'path' ? 'DBBU06' : 'DBBU01';
}

/** How a place reads in the log and in messages. */
export function describePlace(p: BackupPlace): string {
  if (p.kind === 'path') return p.given;
  return p.kind === 'device' ? `device (${p.path})` : `${p.url.replace(/\/$/, '')}${p.url.endsWith('.mfpb') ? '' : `/${p.name}`}`;
}

/** The file name a backup of `groupId` takes in a folder (a share's or a path's). */
export function groupBackupName(groupId: string): string {
  return `mfpsync-${groupId}.mfpb`;
}

/**
 * The manual's checklist for DBBU02 and DBRS02 ("an error with an unidentified cause"), the detail
 * (smbclient's words) beneath it. Not for a refusal whose cause is known (a damaged file, a wrong
 * administrator password): those keep their code and say why.
 */
export function withChecklist(e: MfpError): MfpError {
  if (e.code !== 'DBBU02' && e.code !== 'DBRS02') return e;
  const what = e.code === 'DBBU02' ? 'Failed to generate the backup file (network).' : 'Failed to restore data from the network destination.';
  const message = `${what} An error with an unidentified cause may have occurred. Check the following: whether the settings are entered correctly; the access privileges for the SMB server; the network environment.\n  detail: ${e.message}`;
  return new MfpError(e.code, message, { cause: e.cause ?? e });
}

const UNREACHABLE = new Set(['ENOENT', 'ENOTDIR']);
const DENIED = new Set(['EACCES', 'EPERM', 'EROFS']);
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** The errno code of an error or of its cause (writeBackupFile wraps Node's). */
function errnoOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const own = typeof e?.code === 'string' && !/^[A-Z]+\d\d$/.test(e.code) ? e.code : undefined;
  return own ?? (typeof e?.cause?.code === 'string' ? e.cause.code : undefined);
}

/**
 * Writes a backup to a path. The folder must exist — a USB stick that is not mounted is not made on
 * the machine's own disk — (DBBU04 when it does not), be writable (DBBU05: no rights, a read-only
 * medium) and have room (DBBU03, checked with statfs first and on ENOSPC); any other failure, or a file
 * that does not read back, is DBBU06.
 */
async function storeAtPath(place: Extract<BackupPlace, { kind: 'path' }>, bytes: Uint8Array, verify: (b: Uint8Array) => void): Promise<string> {
  const named = place.given.endsWith('.mfpb');
  const dir = named ? dirname(place.given) : place.given;
  const path = named ? place.given : join(dir, groupBackupName(place.groupId));
  const info = await stat(dir).catch((err: unknown) => {
    throw new MfpError('DBBU04', `the destination folder ${dir} does not exist (is the medium mounted?): ${(err as Error).message}`, { cause: err });
  });
  if (!info.isDirectory()) throw new MfpError('DBBU04', `the destination ${dir} is not a folder`);
  await access(dir, constants.W_OK).catch((err: unknown) => {
    throw new MfpError('DBBU05', `the destination folder ${dir} is not writable: ${(err as Error).message}`, { cause: err });
  });
  const free = await statfs(dir).then((s) => s.bavail * s.bsize).catch(() => Infinity);
  if (free < bytes.length) throw new MfpError('DBBU03', `the backup needs ${bytes.length} bytes; ${dir} has ${free} free`);
  try {
    await writeBackupFile(path, bytes);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno && FULL.has(errno)) throw new MfpError('DBBU03', `not enough free space for the backup in ${dir}: ${(err as Error).message}`, { cause: err });
    if (errno && DENIED.has(errno)) throw new MfpError('DBBU05', `the destination folder ${dir} is not writable: ${(err as Error).message}`, { cause: err });
    if (errno && UNREACHABLE.has(errno)) throw new MfpError('DBBU04', `the destination folder ${dir} disappeared during the backup: ${(err as Error).message}`, { cause: err });
    throw new MfpError('DBBU06', `the backup could not be saved to ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    verify(await readFile(path));
  } catch (err) {
    await unlink(path).catch(() => undefined);
    throw new MfpError('DBBU06', `the backup written to ${path} does not read back: ${(err as Error).message}`, { cause: err });
  }
  return path;
}

/**
 * The file a path restore reads: the file given, or in a folder the group's file — or the folder's only
 * backup file, for a machine that does not know the group yet. DBRS03 when there is none (or several
 * and none of this group), DBRS04 when the folder cannot be read.
 */
async function pathToRestore(place: Extract<BackupPlace, { kind: 'path' }>): Promise<string> {
  const info = await stat(place.given).catch((err: unknown) => {
    const errno = errnoOf(err);
    if (errno && DENIED.has(errno)) throw new MfpError('DBRS04', `${place.given} is not accessible: ${(err as Error).message}`, { cause: err });
    throw new MfpError('DBRS03', `there is no backup at ${place.given} (is the medium mounted?)`, { cause: err });
  });
  if (!info.isDirectory()) return place.given;
  const names = await readdir(place.given).catch((err: unknown) => {
    throw new MfpError('DBRS04', `the folder ${place.given} cannot be read: ${(err as Error).message}`, { cause: err });
  });
  const own = groupBackupName(place.groupId);
  if (names.includes(own)) return join(place.given, own);
  const backups = names.filter((n) => /^mfpsync-.+\.mfpb$/.test(n));
  if (backups.length === 1) return join(place.given, backups[0]!);
  throw new MfpError('DBRS03', backups.length === 0
    ? `there is no backup file (mfpsync-GROUP.mfpb) in ${place.given}`
    : `${place.given} holds ${backups.length} backup files and none of group ${place.groupId}: name the file (${backups.join(', ')})`);
}

/**
 * Writes a backup file to its place. Device: free space is checked first (DBBU03), the file written
 * atomically (DBBU01 when the slot's folder cannot be made, DBBU03 on a full disk, DBBU06 when writing
 * fails otherwise) and read back. Network: uploaded under a temporary name and renamed (DBBU02-05).
 * Returns where it went (a path for the device).
 */
export async function storeBackup(place: BackupPlace, bytes: Uint8Array, scratchDir: string, verify: (b: Uint8Array) => void): Promise<string> {
  if (place.kind === 'path') return storeAtPath(place, bytes, verify);
  if (place.kind === 'device') {
    try {
      await mkdir(place.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new MfpError('DBBU01', `cannot create the backup folder ${place.dir}: ${(err as Error).message}`, { cause: err });
    }
    const free = await statfs(place.dir).then((s) => s.bavail * s.bsize).catch(() => Infinity);
    if (free < bytes.length) throw new MfpError('DBBU03', `the backup needs ${bytes.length} bytes; ${place.dir} has ${free} free`);
    try {
      await writeBackupFile(place.path, bytes);
    } catch (err) {
      if (err instanceof MfpError && err.code === 'DBBU03') throw err;
      throw new MfpError('DBBU06', `the backup could not be saved to ${place.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      verify(await readFile(place.path));
    } catch (err) {
      await unlink(place.path).catch(() => undefined);
      throw new MfpError('DBBU06', `the backup written to ${place.path} does not read back: ${(err as Error).message}`, { cause: err });
    }
    return place.path;
  }
  const tmp = join(scratchDir, `.backup-${randomBytes(6).toString('hex')}.tmp`);
  try {
    try {
      await writeBackupFile(tmp, bytes);
    } catch (err) {
      throw new MfpError(err instanceof MfpError && err.code === 'DBBU03' ? 'DBBU03' : 'DBBU02', `cannot stage the backup for upload: ${(err as Error).message}`, { cause: err });
    }
    try {
      await place.share.put(tmp, place.name);
    } catch (err) {
      throw withChecklist(smbErrorCode(err, 'backup'));
    }
    return describePlace(place);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Reads and verifies a backup from its place; nothing is returned unless the whole file checks.
 * Device failures are DBRS01; network ones DBRS02-04.
 */
export async function loadBackup(place: BackupPlace, scratchDir: string, opener: Parameters<typeof decodeBackupFile>[1]): Promise<BackupFile> {
  // A file on a path is on this machine's file system, as the device slot is: DBRS01 when it is not a
  // usable backup (DBRS03/DBRS04 when it is not there or cannot be read).
  const code: ErrorCode = place.kind === 'network' ? 'DBRS02' : 'DBRS01';
  let path = place.kind === 'device' ? place.path : place.kind === 'path' ? await pathToRestore(place) : join(scratchDir, `.restore-${randomBytes(6).toString('hex')}.tmp`);
  const where = place.kind === 'path' ? path : describePlace(place);
  try {
    if (place.kind === 'network') {
      try {
        await place.share.get(place.name, path);
      } catch (err) {
        throw withChecklist(smbErrorCode(err, 'restore'));
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBackupFile(path);
    } catch (err) {
      if (err instanceof BackupFileError) throw new MfpError(code, `${where} is not a usable backup: ${err.message}`, { cause: err });
      const errno = errnoOf(err);
      if (place.kind === 'path' && errno && UNREACHABLE.has(errno)) throw new MfpError('DBRS03', `there is no backup at ${where}`, { cause: err });
      if (place.kind === 'path' && errno && DENIED.has(errno)) throw new MfpError('DBRS04', `${where} is not accessible: ${(err as Error).message}`, { cause: err });
      const missing = errno === 'ENOENT';
      throw withChecklist(new MfpError(code, missing ? `there is no backup at ${where}` : `cannot read ${where}: ${(err as Error).message}`, { cause: err }));
    }
    try {
      return decodeBackupFile(bytes, opener);
    } catch (err) {
      if (err instanceof BackupFileError) throw new MfpError(code, `${where} cannot be restored: ${err.message}; nothing was changed`, { cause: err });
      throw err;
    }
  } finally {
    if (place.kind === 'network') await rm(path, { force: true });
    path = '';
  }
}

/** The execution log of backups, restores and recoveries (newest last), in the local store. */
export class BackupLog {
  constructor(private readonly local: LocalStore) {}

  async list(): Promise<BackupLogEntry[]> {
    return (await this.local.getMeta<BackupLogEntry[]>('backupLog')) ?? [];
  }

  async add(entry: BackupLogEntry): Promise<void> {
    const all = [...(await this.list()), entry].slice(-BACKUP_LOG_ENTRIES);
    await this.local.setMeta({ backupLog: all });
  }
}

/** Deletes the device slot (SPEC §10: at the next backup, a restore, a replication or a recovery). */
export async function clearDeviceSlot(deviceDir: string): Promise<void> {
  await rm(join(deviceDir, DEVICE_BACKUP_NAME), { force: true });
}
