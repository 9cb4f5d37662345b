/** `mfpsync sharing list` / `sharing set ITEM shared|device`: Data Sharing Details (SPEC §4). */
import type { Command } from 'commander';
import { action, control, print, table, type ShellContext } from '../shell.js';

interface Sharing {
  items: { item: string; scope: 'shared' | 'device' }[];
  version: number;
  reset?: number;
}

/** The scope of each scope-configurable item. */
export async function collectSharing(ctx: ShellContext): Promise<Sharing> {
  return (await control(ctx, 'sharing.list')) as Sharing;
}

/** Sets an item's scope (on a server, with no client connected). */
export async function collectSharingSet(ctx: ShellContext, item: string, scope: string): Promise<Sharing> {
  return (await control(ctx, 'sharing.set', { item, scope })) as Sharing;
}

function format(s: Sharing): string {
  const rows = table(['ITEM', 'SCOPE'], s.items.map((i) => [i.item, i.scope === 'device' ? 'device (not shared)' : 'shared']));
  return `${rows}\nevery other item is always shared${s.reset ? `\n${s.reset} value(s) reset on the server` : ''}`;
}

export function register(program: Command): void {
  const sharing = program.command('sharing').description('Data Sharing Details: which items are shared or device-specific');
  sharing.command('list').action(action(async (ctx) => print(ctx, await collectSharing(ctx), format)));
  sharing
    .command('set')
    .argument('<item>', 'job-defaults, previous-settings or timeline')
    .argument('<scope>', 'shared or device')
    .description('change a scope on the server; refused while a client is connected')
    .action(action(async (ctx, item: string, scope: string) => print(ctx, await collectSharingSet(ctx, item, scope), format)));
}
