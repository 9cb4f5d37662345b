/**
 * `mfpsync user get USER [ITEM] | user set USER ITEM JSON`, the same for `group GROUP`, and
 * `shared get [ITEM] | shared set ITEM JSON` for the device-wide items (Shared buttons).
 * On a server they act on the group's authoritative copy; elsewhere on this machine's store.
 */
import type { Command } from 'commander';
import type { ItemKind } from '../../storage/catalog.js';
import { action, control, parseJson, print, type ShellContext } from '../shell.js';

interface Items {
  kind: ItemKind;
  id: string;
  items: Record<string, { value: unknown; version: number; set: boolean }>;
}

/** Reads items through the agent. */
export async function collectGet(ctx: ShellContext, kind: ItemKind, id: string, item?: string): Promise<Items> {
  return (await control(ctx, 'item.get', { kind, id, item })) as Items;
}

/** Writes an item through the agent. */
export async function collectSet(ctx: ShellContext, kind: ItemKind, id: string, item: string, json: string): Promise<unknown> {
  return control(ctx, 'item.set', { kind, id, item, value: parseJson(json) });
}

function formatItems(r: Items, single: boolean): string {
  const entries = Object.entries(r.items);
  if (single && entries.length === 1) return JSON.stringify(entries[0]![1].value);
  return entries.map(([n, v]) => `${n}${v.set ? '' : ' (default)'}: ${JSON.stringify(v.value)}`).join('\n');
}

export function register(program: Command): void {
  for (const [name, kind, what] of [['user', 'user', 'USER'], ['group', 'group', 'GROUP']] as const) {
    const cmd = program.command(name).description(`read or write a ${kind}'s items`);
    cmd
      .command('get')
      .argument(`<${what.toLowerCase()}>`)
      .argument('[item]')
      .description(`print a ${kind}'s items (or one item's value)`)
      .action(action(async (ctx, id: string, item?: string) => print(ctx, await collectGet(ctx, kind, id, item), (r: Items) => formatItems(r, item !== undefined))));
    cmd
      .command('set')
      .argument(`<${what.toLowerCase()}>`)
      .argument('<item>')
      .argument('<json>', 'the value, as JSON (or @FILE to read it from a file)')
      .description(`write one of a ${kind}'s items`)
      .action(action(async (ctx, id: string, item: string, json: string) => print(ctx, await collectSet(ctx, kind, id, item, json), () => `${id} ${item} saved`)));
  }
  const shared = program.command('shared').description('read or write the device-wide shared items (Shared buttons)');
  shared
    .command('get')
    .argument('[item]')
    .action(action(async (ctx, item?: string) => print(ctx, await collectGet(ctx, 'device', '', item), (r: Items) => formatItems(r, item !== undefined))));
  shared
    .command('set')
    .argument('<item>')
    .argument('<json>', 'the value, as JSON (or @FILE to read it from a file)')
    .action(action(async (ctx, item: string, json: string) => print(ctx, await collectSet(ctx, 'device', '', item, json), () => `${item} saved`)));
}
