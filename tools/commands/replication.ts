/**
 * `mfpsync replication start|stop|status` (SPEC §9): a server's periodic copy of its database to a
 * machine in role replica.
 */
import type { Command } from 'commander';
import type { ReplicationStatus } from '../../agent/replicator.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, formatTime, print, type ShellContext } from '../shell.js';

interface StartOptions {
  to?: string;
  user?: string;
  password?: string;
  interval?: string;
  threshold?: string;
}

/** Starts replication: pairs with the target and makes the first copy now. */
export async function collectStart(ctx: ShellContext, o: StartOptions): Promise<unknown> {
  if (!o.to || o.user === undefined || o.password === undefined) throw new MfpError('USAGE', 'replication start needs --to HOST[:PORT] --user ID --password PW');
  const number = (text: string | undefined, name: string) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) throw new MfpError('USAGE', `${name} must be a number`);
    return n;
  };
  return control(ctx, 'replication.start', { to: o.to, user: o.user, password: o.password, interval: number(o.interval, '--interval'), threshold: number(o.threshold, '--threshold') });
}

type AnyStatus = ReplicationStatus | { role: 'replica'; message: string };

/** The status messages of SPEC §9, then the details. */
export function formatReplication(s: AnyStatus): string {
  if ('role' in s) return s.message;
  const lines = [s.message, `target ${s.to}; every ${s.intervalMinutes} min or after ${s.threshold} changes (${s.changesSinceLastRun} since the last run); ${s.state}`];
  if (s.lastRun) lines.push(`last run: ${formatTime(s.lastReplication)} — ${s.lastRun.buckets} of ${s.lastRun.totalBuckets} buckets sent, ${s.lastRun.bytes} bytes, seq ${s.lastRun.seq}`);
  if (s.lastError) lines.push(`last error ${s.lastError.code} at ${formatTime(s.lastError.at)}: ${s.lastError.message}`);
  return lines.join('\n');
}

export function register(program: Command): void {
  const cmd = program.command('replication').description('a server\'s periodic copy of its database to a replica');
  cmd
    .command('start')
    .description('pair with a replica (its administrator account), copy now, then at the interval, past the threshold and when a client starts; again to the same replica: a copy now, the interval and threshold kept unless given')
    .option('--to <host[:port]>', 'the replica (role replica), default port 8443')
    .option('--user <id>', 'the replica\'s administrator user id')
    .option('--password <pw>', 'the replica\'s administrator password')
    .option('--interval <minutes>', 'minutes between copies (default: as configured, else 60)')
    .option('--threshold <n>', 'copy once more than this many changes were made since the last copy (default: as configured, else 1000)')
    .action(action(async (ctx, o: StartOptions) => print(ctx, await collectStart(ctx, o), formatReplication)));
  cmd
    .command('stop')
    .description('stop replicating, forget the destination and release it (another server may then replicate to it)')
    .action(action(async (ctx) => print(ctx, await control(ctx, 'replication.stop'), (r: { message: string }) => r.message)));
  cmd
    .command('status')
    .description('Waiting for replication... / Could not perform replication... with the last replication time')
    .action(action(async (ctx) => print(ctx, await control(ctx, 'replication.status'), formatReplication)));
}
