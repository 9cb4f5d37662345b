/** `mfpsync conflicts list`: values that lost to the server's (SPEC §3.4), never silently dropped. */
import type { Command } from 'commander';
import type { ConflictEntry } from '../../storage/store.js';
import { action, control, formatTime, print, table, type ShellContext } from '../shell.js';

type Entry = ConflictEntry & { log: 'local' | 'group' };

/** Reads the conflict logs. */
export async function collectConflicts(ctx: ShellContext): Promise<{ conflicts: Entry[] }> {
  return (await control(ctx, 'conflicts.list')) as { conflicts: Entry[] };
}

export function register(program: Command): void {
  program
    .command('conflicts')
    .description('the conflict log')
    .command('list')
    .action(
      action(async (ctx) =>
        print(ctx, await collectConflicts(ctx), (r: { conflicts: Entry[] }) =>
          table(
            ['TIME', 'LOG', 'DEVICE', 'ENTITY', 'ITEM', 'REASON', 'LOST VALUE'],
            r.conflicts.map((c) => [formatTime(c.at), c.log, c.deviceId, c.entity, c.item, c.code ? `${c.reason} (${c.code})` : c.reason, JSON.stringify(c.value).slice(0, 60)]),
          ),
        ),
      ),
    );
}
