/**
 * `mfpsync recover --from HOST[:PORT] --user ID --password PW [--yes]` (SPEC §9): a new server loads
 * a replica's copy of the group after the technician confirms the copy's time.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { ReplicaInfo } from '../../agent/replication.js';
import { formatStamp } from '../../agent/replicator.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, print, type ShellContext } from '../shell.js';

interface RecoverOptions {
  from?: string;
  user?: string;
  password?: string;
  yes?: boolean;
}

type RecoverResult = { loaded: boolean; replica: ReplicaInfo; bytes?: number };

/** What the replica holds, as the confirmation shows it. */
export function describeReplica(r: ReplicaInfo): string {
  return `replica ${r.replicaId} holds group ${r.groupId} as of ${formatStamp(r.at)} (seq ${r.seq}): ${r.counts.users} users, ${r.counts.groups} user groups, ${r.counts.devices} machines`;
}

async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/** Shows the replica's timestamp, asks (unless --yes) and loads it. */
export async function collectRecover(ctx: ShellContext, o: RecoverOptions): Promise<RecoverResult> {
  if (!o.from || o.user === undefined || o.password === undefined) throw new MfpError('USAGE', 'recover needs --from HOST[:PORT] --user ID --password PW');
  const params = { from: o.from, user: o.user, password: o.password };
  if (o.yes) return (await control(ctx, 'recover', { ...params, confirm: true })) as RecoverResult;
  if (ctx.json || !process.stdin.isTTY) throw new MfpError('USAGE', 'recover replaces this server\'s data: confirm interactively, or pass --yes');
  const probe = (await control(ctx, 'recover', { ...params, confirm: false })) as RecoverResult;
  process.stderr.write(`${describeReplica(probe.replica)}\n`);
  if (!(await ask('Load this copy into this server, replacing its data? [y/N] '))) return probe;
  return (await control(ctx, 'recover', { ...params, confirm: true })) as RecoverResult;
}

export function register(program: Command): void {
  program
    .command('recover')
    .description('load a replica\'s copy of the group into this server (after confirming its time)')
    .option('--from <host[:port]>', 'the replica')
    .option('--user <id>', 'the replica\'s administrator user id')
    .option('--password <pw>', 'the replica\'s administrator password')
    .option('--yes', 'do not ask for confirmation (scripts)')
    .action(
      action(async (ctx, o: RecoverOptions) =>
        print(ctx, await collectRecover(ctx, o), (r: RecoverResult) =>
          r.loaded ? `${describeReplica(r.replica)}\nloaded (${r.bytes} bytes); clients resync by checksum when they connect` : `${describeReplica(r.replica)}\nnot loaded`),
      ),
    );
}
