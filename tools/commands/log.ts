/** `mfpsync log [--level warning|error]`: the sync log (SPEC §8). */
import type { Command } from 'commander';
import type { SyncLogEntry } from '../../storage/store.js';
import { action, control, formatTime, print, type ShellContext } from '../shell.js';

/** Reads the sync log at or above a level. */
export async function collectLog(ctx: ShellContext, level: string): Promise<{ entries: SyncLogEntry[] }> {
  return (await control(ctx, 'log', { level })) as { entries: SyncLogEntry[] };
}

const LABEL = { info: 'Info', warning: 'Warning', error: 'Error' } as const;

export function register(program: Command): void {
  program
    .command('log')
    .description('the sync log')
    .option('--level <level>', 'warning or error (default: everything)', 'info')
    .action(
      action(async (ctx, o: { level: string }) =>
        print(ctx, await collectLog(ctx, o.level), (r: { entries: SyncLogEntry[] }) =>
          r.entries.length === 0 ? '(empty)' : r.entries.map((e) => `${formatTime(e.at)} ${LABEL[e.level].padEnd(7)} ${e.code}: ${e.message}`).join('\n'),
        ),
      ),
    );
}
