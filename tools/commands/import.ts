/** `mfpsync import FILE [--address-list personal|groups]` (SPEC §7): import an export file; it is verified whole before anything is applied. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { describeCounts } from '../../agent/describe.js';
import { ADDRESS_LIST_NAMES, type ImportResult } from '../../agent/export.js';
import { action, control, formatTime, print, type ShellContext } from '../shell.js';

/** Imports FILE through the agent (resolved here: the agent's working directory is not the shell's). */
export async function collectImport(ctx: ShellContext, file: string, o: { addressList?: string } = {}): Promise<ImportResult> {
  return (await control(ctx, 'import', { path: resolve(file), ...(o.addressList !== undefined ? { addressList: o.addressList } : {}) })) as ImportResult;
}

function formatImport(r: ImportResult): string {
  const conflicts = r.conflicts > 0 ? `\n${r.conflicts} item(s) were overtaken by newer changes meanwhile: see \`mfpsync conflicts list\`` : '';
  const what = r.addressList ? `[${ADDRESS_LIST_NAMES[r.addressList]}]: ` : '';
  return `imported ${what}${describeCounts(r.counts)} from ${r.path}, exported by ${r.source.name} (${r.source.deviceId}) at ${formatTime(r.createdAt)}${conflicts}`;
}

export function register(program: Command): void {
  program
    .command('import')
    .argument('<file>', 'an export file')
    .description('import an export file: its items replace those of the same users, groups and Shared buttons')
    .option('--address-list <personal|groups>', 'only an address-list file of that kind is accepted')
    .action(action(async (ctx, file: string, o: { addressList?: string }) => print(ctx, await collectImport(ctx, file, o), formatImport)));
}
