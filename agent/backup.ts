/**
 * Backup and restore of the server's synchronization data (SPEC §10): where a backup goes (the
 * machine's own disk, one slot; or an SMB share), how each failure maps to its DBBU/DBRS code, and the
 * execution log. The file itself — signed, checksummed, the group key sealed — is storage/backup-file.ts;
 * taking the image and installing it is the agent's.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
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
  | { kind: 'network'; url: string; share: SmbShare; name: string };

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
  if (!text.startsWith('smb://')) throw new MfpError('INVALID_ARGUMENT', `a backup goes to "device" or smb://HOST/SHARE/DIR, not ${JSON.stringify(text)}`);
  if (options.user === undefined || options.password === undefined) throw new MfpError('USAGE', 'a network backup or restore needs the share\'s credentials: backup --user ID --password PW, restore --share-user ID --share-password PW');
  const fileGiven = text.endsWith('.mfpb');
  const cut = fileGiven ? text.lastIndexOf('/') : text.length;
  const dirUrl = text.slice(0, cut);
  parseSmbUrl(dirUrl);
  const name = fileGiven ? text.slice(cut + 1) : `mfpsync-${options.groupId}.mfpb`;
  return { kind: 'network', url: text, share: new SmbShare({ url: dirUrl, user: options.user, password: options.password }), name };
}

/** How a place reads in the log and in messages. */
export function describePlace(p: BackupPlace): string {
  return p.kind === 'device' ? `device (${p.path})` : `${p.url.replace(/\/$/, '')}${p.url.endsWith('.mfpb') ? '' : `/${p.name}`}`;
}

/**
 * Writes a backup file to its place. Device: free space is checked first (DBBU03), the file written
 * atomically (DBBU01 when the slot's folder cannot be made, DBBU03 on a full disk, DBBU06 when writing
 * fails otherwise) and read back. Network: uploaded under a temporary name and renamed (DBBU02-05).
 * Returns where it went (a path for the device).
 */
export async function storeBackup(place: BackupPlace, bytes: Uint8Array, scratchDir: string, verify: (b: Uint8Array) => void): Promise<string> {
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
      throw smbErrorCode(err, 'backup');
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
  const code: ErrorCode = place.kind === 'device' ? 'DBRS01' : 'DBRS02';
  let path = place.kind === 'device' ? place.path : join(scratchDir, `.restore-${randomBytes(6).toString('hex')}.tmp`);
  try {
    if (place.kind === 'network') {
      try {
        await place.share.get(place.name, path);
      } catch (err) {
        throw smbErrorCode(err, 'restore');
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBackupFile(path);
    } catch (err) {
      if (err instanceof BackupFileError) throw new MfpError(code, `${describePlace(place)} is not a usable backup: ${err.message}`, { cause: err });
      const missing = (err as { code?: string }).code === 'ENOENT';
      throw new MfpError(code, missing ? `there is no backup at ${describePlace(place)}` : `cannot read ${describePlace(place)}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return decodeBackupFile(bytes, opener);
    } catch (err) {
      if (err instanceof BackupFileError) throw new MfpError(code, `${describePlace(place)} cannot be restored: ${err.message}; nothing was changed`, { cause: err });
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
