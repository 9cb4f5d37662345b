/** `mfpsync role set ROLE`: switches this machine's role. */
import type { Command } from 'commander';
import { ROLES } from '../../agent/config.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, intOption, print, type ShellContext } from '../shell.js';
import { formatStatus } from './status.js';

interface RoleOptions {
  server?: string;
  user?: string;
  password?: string;
  force?: boolean;
  searchDepth?: string;
}

/** Asks the agent to switch role; resolves with its new status. */
export async function collectRoleSet(ctx: ShellContext, role: string, o: RoleOptions): Promise<unknown> {
  if (!(ROLES as readonly string[]).includes(role)) throw new MfpError('USAGE', `unknown role ${JSON.stringify(role)}; one of ${ROLES.join(', ')}`);
  if (o.user !== undefined && o.password === undefined) throw new MfpError('USAGE', '--user needs --password');
  const searchDepth = o.searchDepth !== undefined ? intOption(o.searchDepth, 'search-depth', 1, 255) : undefined;
  return control(ctx, 'role.set', { role, server: o.server, user: o.user, password: o.password, force: o.force === true, searchDepth });
}

export function register(program: Command): void {
  const role = program.command('role').description('show or switch this machine\'s role');
  role
    .command('set')
    .argument('<role>', ROLES.join('|'))
    .description('switch role; a client is admitted with the server\'s administrator account')
    .option('--server <host[:port]>', 'the server of a client (default port 8443); left out, the server is searched for on the LAN')
    .option('--search-depth <n>', 'routers the search crosses: its multicast hop limit (1, the default: the same router)')
    .option('--user <id>', 'the server\'s administrator user id (first admission)')
    .option('--password <pw>', 'the server\'s administrator password')
    .option('--force', 'stop serving even though clients are connected')
    .action(action(async (ctx, r: string, o: RoleOptions) => print(ctx, await collectRoleSet(ctx, r, o), formatStatus)));
}
