/**
 * Backup, restore and recovery (SPEC §10): the group's image to the device slot, a network share or a
 * folder, and back; a new server loading a replica's image; the execution log of those runs. The
 * places and the file are agent/backup.ts and storage/backup-file.ts.
 */
import { MfpError } from '../../protocol/errors.js';
import { BACKUP_FORMAT, decodeBackupFile, encodeBackupFile } from '../../storage/backup-file.js';
import { imageEntries } from '../../storage/image.js';
import { Keys } from '../../storage/keys.js';
import { decodeRecord, encodeRecord } from '../../storage/records.js';
import { parseAddress } from '../address.js';
import { BackupLog, clearDeviceSlot, describePlace, loadBackup, parsePlace, placeFailure, storeBackup, type BackupLogEntry } from '../backup.js';
import { formatAddress, readPin } from '../client.js';
import { SOFTWARE_VERSION } from '../config.js';
import { serverKeyOf } from '../identity.js';
import { countImage, pullImage, type ReplicaInfo } from '../replication.js';
import { formatStamp } from '../replicator.js';
import type { ReplicationService } from './replication.js';
import type { RoleService } from './roles.js';
import type { Runtime } from './runtime.js';

type Counts = { users: number; groups: number; devices: number };

/** What `backup` made. */
export interface BackupResult {
  destination: string;
  path?: string;
  bytes: number;
  seq: number;
  counts: Counts;
}

/** What `restore` installed. */
export interface RestoreResult {
  source: string;
  seq: number;
  createdAt: number;
  counts: Counts;
  format: number;
  admits: string;
  sealedFor: string | null;
}

/** What `recover` showed or loaded. */
export interface RecoverResult {
  loaded: boolean;
  replica: ReplicaInfo;
  bytes?: number;
}

/** Backup, restore, recovery and their log. */
export class BackupService {
  readonly #rt: Runtime;
  readonly #roles: RoleService;
  readonly #replication: ReplicationService;
  readonly #log: BackupLog;

  constructor(rt: Runtime, roles: RoleService, replication: ReplicationService) {
    this.#rt = rt;
    this.#roles = roles;
    this.#replication = replication;
    this.#log = new BackupLog(rt.local);
  }

  async #logRun(entry: BackupLogEntry): Promise<void> {
    const log = this.#rt.log;
    await this.#log.add(entry).catch(() => undefined);
    if (entry.result === 'ok') log.info(entry.op.toUpperCase(), `${entry.op} ${entry.place}: ${entry.message}`);
    else log.error(entry.result, `${entry.op} ${entry.place} failed: ${entry.message}`);
  }

  /**
   * `backup --to device|smb://…|DIR`: the group's image from one snapshot, in a signed file whose group
   * key is sealed for the administrator account. Refused while a replication executes.
   */
  async backup(options: { to: string; user?: string; password?: string }): Promise<BackupResult> {
    const rt = this.#rt;
    const group = rt.group;
    const groupKey = rt.groupKey;
    if (!group || !groupKey) throw new MfpError('WRONG_ROLE', `backup is for a server; this machine is ${rt.role}`);
    const place = parsePlace(options.to, { deviceDir: rt.backupDir, groupId: rt.groupId, ...options });
    return this.#replication.exclusive('backup', async () => {
      const at = rt.clock.now();
      try {
        const snap = group.kv.snapshot();
        let bytes: Uint8Array;
        let seq = 0;
        let counts;
        try {
          const entries: [string, Uint8Array][] = [];
          let epoch = '';
          let items = 0;
          for await (const [k, v] of imageEntries(snap)) {
            if (k === Keys.meta('groupKey')) continue;
            if (k.startsWith('I\x00')) items++;
            if (k === Keys.meta('seq')) seq = decodeRecord<number>(v, k);
            if (k === Keys.meta('epoch')) epoch = decodeRecord<string>(v, k);
            entries.push([k, v]);
          }
          counts = await countImage(snap);
          bytes = encodeBackupFile({
            software: SOFTWARE_VERSION,
            createdAt: at,
            groupId: rt.groupId,
            groupKey,
            epoch,
            seq,
            counts: { ...counts, items },
            admin: this.#adminKey(),
            entries,
          });
        } catch (err) {
          if (err instanceof MfpError && err.code.startsWith('DBBU')) throw err;
          throw new MfpError('DBBU06', `the backup could not be made from the store: ${(err as Error).message}`, { cause: err });
        } finally {
          await snap.close();
        }
        const opener = this.#opener([groupKey.publicKey]);
        const where = await storeBackup(place, bytes, rt.dataDir, (b) => void decodeBackupFile(b, opener));
        // The [Device] slot goes with the next backup to either destination (the device's overwrote it).
        if (place.kind !== 'device') await clearDeviceSlot(rt.backupDir);
        await this.#logRun({ at, op: 'backup', place: describePlace(place), result: 'ok', message: `seq ${seq}, ${counts.users} users, ${bytes.length} bytes`, bytes: bytes.length, seq });
        return { destination: where, ...(place.kind !== 'network' ? { path: where } : {}), bytes: bytes.length, seq, counts };
      } catch (err) {
        const e = err instanceof MfpError ? err : new MfpError(placeFailure(place, 'backup'), (err as Error).message, { cause: err });
        await this.#logRun({ at, op: 'backup', place: describePlace(place), result: e.code, message: e.message });
        throw e;
      }
    });
  }

  /** The group administrator's account as this server keeps it: what a backup's group key is sealed for. */
  #adminKey(): { user: string; salt: Uint8Array; serverKey: Uint8Array } {
    const { user, salt, serverKey } = this.#rt.config.admin;
    return { user, salt: Buffer.from(salt, 'base64'), serverKey: Buffer.from(serverKey, 'base64') };
  }

  /**
   * Who opens a backup here: the administrator account given (its password, with the salt the file
   * names), else this server's own account when the file was sealed for it as it is now; for a
   * format-1 file, this device's key and the group keys it trusts.
   */
  #opener(trustedGroupKeys: Uint8Array[], account?: { user: string; password: string }): Parameters<typeof decodeBackupFile>[1] {
    const own = this.#adminKey();
    return {
      adminKey: (user, salt) => {
        if (account) return account.user === user ? serverKeyOf(account.password, salt) : undefined;
        return own.user === user && Buffer.from(own.salt).equals(salt) ? own.serverKey : undefined;
      },
      deviceId: this.#rt.identity.deviceId,
      secretKey: this.#rt.identity.secretKey,
      trustedGroupKeys,
    };
  }

  /**
   * `restore --from device|smb://… [--user ID --password PW]`: verifies the whole file (checksum,
   * signature by its group key, the group key opened with the administrator account) before anything
   * changes, then installs it atomically and serves it as a new epoch. For a server with no client
   * connected. `--user/--password` are the group administrator's (as they were at the backup); without
   * them, only the server whose account sealed the file opens it. A network share's credentials are
   * `shareUser/sharePassword`.
   */
  async restore(options: { from: string; user?: string; password?: string; shareUser?: string; sharePassword?: string }): Promise<RestoreResult> {
    const rt = this.#rt;
    rt.quietServer('restore');
    // A directory holds one file per group: a machine that was a client of the group restores its file.
    const pin = await readPin(rt.local);
    const place = parsePlace(options.from, { deviceDir: rt.backupDir, groupId: pin?.groupId ?? rt.groupId, user: options.shareUser, password: options.sharePassword });
    return this.#replication.exclusive('restore', async () => {
      const at = rt.clock.now();
      try {
        const trusted = [rt.groupKey!.publicKey, ...(pin?.groupKey ? [Buffer.from(pin.groupKey, 'base64')] : [])];
        const account = options.user !== undefined ? { user: options.user, password: options.password ?? '' } : undefined;
        const file = await loadBackup(place, rt.dataDir, this.#opener(trusted, account));
        const groupKeyRecord: [string, Uint8Array] = [
          Keys.meta('groupKey'),
          encodeRecord({ groupId: file.header.groupId, secretKey: Buffer.from(file.groupSecretKey).toString('base64') }),
        ];
        try {
          await this.#roles.installGroup([...file.entries, groupKeyRecord]);
        } catch (err) {
          throw new MfpError(placeFailure(place, 'restore'), `the verified backup could not be installed: ${(err as Error).message}; the previous data is unchanged`, { cause: err });
        }
        await clearDeviceSlot(rt.backupDir);
        const { header } = file;
        await this.#logRun({ at, op: 'restore', place: describePlace(place), result: 'ok', message: `backup of ${new Date(header.createdAt).toISOString()}, seq ${header.seq}, ${header.counts.users} users`, seq: header.seq });
        if (file.format < BACKUP_FORMAT) {
          rt.log.warning('BACKUP_FORMAT_OLD', `the restored backup is of format ${file.format}: its group key is sealed to every member machine, so any of them opens it; make a new backup now and destroy the old files`);
        }
        // New clients are admitted with this machine's administrator account, not the backup's (README).
        return { source: describePlace(place), seq: header.seq, createdAt: header.createdAt, counts: header.counts, format: file.format, admits: rt.config.admin.user, sealedFor: header.admin?.user ?? null };
      } catch (err) {
        const e = err instanceof MfpError ? err : new MfpError(placeFailure(place, 'restore'), (err as Error).message, { cause: err });
        await this.#logRun({ at, op: 'restore', place: describePlace(place), result: e.code, message: e.message });
        throw e;
      }
    });
  }

  /** `backup log`: every backup, restore and recovery, oldest first. */
  async logList(): Promise<{ runs: BackupLogEntry[] }> {
    return { runs: await this.#log.list() };
  }

  /**
   * `recover --from`: a new server loads a replica's image. Without `confirm` it only shows what the
   * replica holds (its timestamp); with it, the image is pulled, checked against the replica's
   * digest and installed as this server's group (a new epoch).
   */
  async recover(options: { from: string; user: string; password: string; confirm: boolean }): Promise<RecoverResult> {
    const rt = this.#rt;
    rt.quietServer('recovery');
    const address = parseAddress(options.from);
    return this.#replication.exclusive('recovery', async () => {
      const at = rt.clock.now();
      try {
        const pulled = await pullImage({
          address,
          identity: rt.identity,
          name: rt.config.name,
          software: SOFTWARE_VERSION,
          admission: { user: options.user, password: options.password },
          confirm: () => options.confirm,
        });
        if ('declined' in pulled) return { loaded: false, replica: pulled.info };
        await this.#roles.installGroup(pulled.entries);
        await clearDeviceSlot(rt.backupDir);
        await this.#logRun({ at, op: 'recover', place: formatAddress(address), result: 'ok', message: `replica of ${formatStamp(pulled.info.at)}, seq ${pulled.info.seq}, ${pulled.bytes} bytes`, bytes: pulled.bytes, seq: pulled.info.seq });
        return { loaded: true, replica: pulled.info, bytes: pulled.bytes };
      } catch (err) {
        const e = err instanceof MfpError ? err : new MfpError('ADDRESS_INCORRECT', (err as Error).message, { cause: err });
        if (options.confirm) await this.#logRun({ at, op: 'recover', place: formatAddress(address), result: e.code, message: e.message });
        throw e;
      }
    });
  }
}
