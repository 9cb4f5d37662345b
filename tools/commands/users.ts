/** `mfpsync users list [--search Q]` / `users delete (USER…|--search Q) [--local] --yes`: Delete User Data (SPEC §8). */
import type { Command } from 'commander';
import type { UserEntry } from '../../agent/agent.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, formatTime, print, table, type ShellContext } from '../shell.js';

/** Lists users and user groups matching a partial search (blank lists all). */
export async function collectUsers(ctx: ShellContext, search: string, checksums = false): Promise<{ users: UserEntry[] }> {
  return (await control(ctx, 'users.list', { search, checksums })) as { users: UserEntry[] };
}

/** Deletes users (names; `g:ID` names a user group) or everything a search matches. */
export async function collectDelete(ctx: ShellContext, names: string[], o: { search?: string; yes?: boolean; local?: boolean }): Promise<{ deleted: string[] }> {
  if (!o.yes) throw new MfpError('USAGE', 'deleting user data cannot be undone: confirm with --yes');
  if (names.length === 0 && o.search === undefined) throw new MfpError('USAGE', 'name the users to delete, or --search Q');
  const users = names.filter((n) => !n.startsWith('g:'));
  const groups = names.filter((n) => n.startsWith('g:')).map((n) => n.slice(2));
  return (await control(ctx, 'users.delete', { users, groups, search: o.search, local: o.local === true })) as { deleted: string[] };
}

export function register(program: Command): void {
  const users = program.command('users').description('list or delete user data');
  users
    .command('list')
    .option('--search <q>', 'partial match on user name or group id', '')
    .option('--checksums', 'add each entry\'s content checksum (equal on two machines: the same data)')
    .action(
      action(async (ctx, o: { search: string; checksums?: boolean }) =>
        print(ctx, await collectUsers(ctx, o.search, o.checksums === true), (r: { users: UserEntry[] }) =>
          table(
            ['KIND', 'ID', 'ITEMS', 'LAST USED', ...(o.checksums ? ['CHECKSUM'] : [])],
            r.users.map((u) => [u.kind, u.id, String(u.items), formatTime(u.lastUsed), ...(o.checksums ? [u.checksum ?? '-'] : [])]),
          ),
        ),
      ),
    );
  users
    .command('delete')
    .argument('[names...]', 'user names; g:ID for a user group')
    .option('--search <q>', 'delete everything this partial match lists')
    .option('--local', 'this machine\'s copy only (a client always; on a server-client its own client part): the next login fetches it again')
    .option('--yes', 'confirm')
    .action(
      action(async (ctx, names: string[], o: { search?: string; yes?: boolean; local?: boolean }) =>
        print(ctx, await collectDelete(ctx, names, o), (r: { deleted: string[] }) => (r.deleted.length ? `deleted: ${r.deleted.join(', ')}` : 'nothing matched')),
      ),
    );
}
