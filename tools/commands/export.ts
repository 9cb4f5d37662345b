/**
 * `mfpsync export --out FILE [--address-list personal|groups]` / `mfpsync export prepare [--users U,…] [--groups G,…]` (SPEC §7): export
 * personalized data to one file; on a server-client, prepare a selection of users and user groups for a
 * 15-minute export window.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { describeCounts } from '../../agent/describe.js';
import { ADDRESS_LIST_NAMES, type ExportResult, type PrepareResult } from '../../agent/export.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, formatTime, print, type ShellContext } from '../shell.js';

/** Exports through the agent to FILE (resolved here: the agent's working directory is not the shell's). */
export async function collectExport(ctx: ShellContext, o: { out?: string; addressList?: string }): Promise<ExportResult> {
  if (o.out === undefined || o.out === '') throw new MfpError('USAGE', 'export needs --out FILE (or `export prepare` on a server-client)');
  return (await control(ctx, 'export', { path: resolve(o.out), ...(o.addressList !== undefined ? { addressList: o.addressList } : {}) })) as ExportResult;
}

/** A comma-separated option as a list; absent stays absent. */
function names(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : text.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** Prepares a selection (none named: every user and group) and opens the export window. */
export async function collectPrepare(ctx: ShellContext, o: { users?: string; groups?: string }): Promise<PrepareResult> {
  return (await control(ctx, 'export.prepare', { users: names(o.users), groups: names(o.groups) })) as PrepareResult;
}

function formatExport(r: ExportResult): string {
  const window = r.window ? `\nprepared selection; the export window ends ${formatTime(r.window.endsAt)}` : '';
  const what = r.addressList ? `[${ADDRESS_LIST_NAMES[r.addressList]}]: ` : '';
  return `exported ${what}${describeCounts(r.counts)} to ${r.path} (${r.bytes} bytes)${window}`;
}

function formatPrepare(r: PrepareResult): string {
  const list = (xs: string[]) => (xs.length === 0 ? 'none' : xs.length > 10 ? `${xs.slice(0, 10).join(', ')} and ${xs.length - 10} more` : xs.join(', '));
  const n = (xs: string[], one: string) => `${xs.length} ${one}${xs.length === 1 ? '' : 's'} (${list(xs)})`;
  return [
    `prepared ${n(r.users, 'user')} and ${n(r.groups, 'user group')}`,
    `export and import of them are allowed until ${formatTime(r.endsAt)}`,
    `warning: ${r.warning}`,
  ].join('\n');
}

export function register(program: Command): void {
  const cmd = program
    .command('export')
    .description('export personalized data to one file (users, user group address lists, Shared buttons)')
    .option('--out <file>', 'the file to write (replaced atomically)')
    .option('--address-list <personal|groups>', 'an address-list file instead of the batch file: every user\'s address list ([Personal Address List (All)]) or every user group\'s ([User Group Address List (All)])')
    .action(action(async (ctx, o: { out?: string; addressList?: string }) => print(ctx, await collectExport(ctx, o), formatExport)));
  cmd
    .command('prepare')
    .description('server-client: bring users up to date and open a 15-minute export/import window for them')
    .option('--users <u,...>', 'user names, comma-separated (with no --users and no --groups: all)')
    .option('--groups <g,...>', 'user group ids, comma-separated')
    .action(action(async (ctx, o: { users?: string; groups?: string }) => print(ctx, await collectPrepare(ctx, o), formatPrepare)));
}
