/**
 * `mfpsync backup --to device|smb://HOST/SHARE/DIR|DIR`, `mfpsync restore --from device|smb://…|FILE`,
 * `mfpsync backup log` (SPEC §10): the server's synchronization data to one signed file on this
 * machine's disk, an SMB share or a folder (a USB stick).
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { BackupLogEntry } from '../../agent/backup.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, formatTime, print, table, type ShellContext } from '../shell.js';

interface PlaceOptions {
  to?: string;
  from?: string;
  user?: string;
  password?: string;
  /** restore: the SMB share's credentials (its --user/--password are the group administrator's). */
  shareUser?: string;
  sharePassword?: string;
}

interface Counts {
  users: number;
  groups: number;
  devices: number;
}

const counted = (c: Counts) => `${c.users} users, ${c.groups} user groups, ${c.devices} machines`;

/** A path is the shell's: made absolute against the shell's working directory (the agent's differs). */
function place(text: string): string {
  return text === 'device' || text.startsWith('smb://') ? text : resolve(text);
}

/** Runs a backup through the agent. */
export async function collectBackup(ctx: ShellContext, o: PlaceOptions): Promise<unknown> {
  if (!o.to) throw new MfpError('USAGE', 'backup needs --to device, --to DIR (a folder, e.g. a USB stick) or --to smb://HOST/SHARE/DIR --user ID --password PW');
  return control(ctx, 'backup', { to: place(o.to), user: o.user, password: o.password });
}

/** Runs a restore through the agent. */
export async function collectRestore(ctx: ShellContext, o: PlaceOptions): Promise<unknown> {
  if (!o.from) throw new MfpError('USAGE', 'restore needs --from device, --from FILE (or the folder holding it) or --from smb://HOST/SHARE/DIR --share-user ID --share-password PW, and on another machine than the one that made the backup the group administrator\'s --user ID --password PW');
  return control(ctx, 'restore', { from: place(o.from), user: o.user, password: o.password, shareUser: o.shareUser, sharePassword: o.sharePassword });
}

function formatLog(r: { runs: BackupLogEntry[] }): string {
  if (r.runs.length === 0) return 'no backup, restore or recovery has run on this machine';
  return table(['time', 'operation', 'destination', 'result', 'detail'], r.runs.map((e) => [formatTime(e.at), e.op, e.place, e.result, e.message]));
}

export function register(program: Command): void {
  const backup = program
    .command('backup')
    .description('back up the server\'s synchronization data to this machine (device) or an SMB share')
    .option('--to <place>', 'device | smb://HOST[:PORT]/SHARE/DIR | DIR (a folder, e.g. a USB stick; DIR/FILE.mfpb names the file)')
    .option('--user <id>', 'the share\'s user')
    .option('--password <pw>', 'the share\'s password')
    .action(
      action(async (ctx, o: PlaceOptions) =>
        print(ctx, await collectBackup(ctx, o), (r: { destination: string; bytes: number; seq: number; counts: Counts }) => `backed up ${counted(r.counts)} (seq ${r.seq}, ${r.bytes} bytes) to ${r.destination}`),
      ),
    );
  backup
    .command('log')
    .description('every backup, restore and recovery with its time, destination and result')
    .action(action(async (ctx) => print(ctx, await control(ctx, 'backup.log'), formatLog)));
  program
    .command('restore')
    .description('restore a backup onto this server (no client may be connected); verified whole before anything changes')
    .option('--from <place>', 'device | smb://HOST[:PORT]/SHARE/DIR[/FILE.mfpb] | FILE (or the folder holding it)')
    .option('--user <id>', 'the group administrator\'s user id (opens the backup\'s group key)')
    .option('--password <pw>', 'the group administrator\'s password when the backup was made')
    .option('--share-user <id>', 'the SMB share\'s user')
    .option('--share-password <pw>', 'the SMB share\'s password')
    .action(
      action(async (ctx, o: PlaceOptions) =>
        print(ctx, await collectRestore(ctx, o), (r: { source: string; seq: number; createdAt: number; counts: Counts; admits: string }) =>
          `restored ${counted(r.counts)} (seq ${r.seq}, backup of ${formatTime(r.createdAt)}) from ${r.source}; clients resync by checksum when they connect\nnew clients are admitted with this machine's administrator account (${r.admits}); the next backup is sealed for it`),
      ),
    );
}
