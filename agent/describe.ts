/**
 * What an export or an import holds, in words, as the agent logs it and the shell prints it. Its own
 * module so that the shell, which every technician command starts, loads no schema or store code.
 */
import type { ExportCounts } from '../storage/export-file.js';

/** "3 users, 1 user group, the Shared buttons (12 items)". */
export function describeCounts(c: ExportCounts): string {
  const n = (k: number, one: string) => `${k} ${one}${k === 1 ? '' : 's'}`;
  return `${n(c.users, 'user')}, ${n(c.groups, 'user group')}${c.shared ? ', the Shared buttons' : ''} (${n(c.items, 'item')})`;
}
