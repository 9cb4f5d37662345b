/** `mfpsync role set ROLE`: switches this machine's role. */
import type { Command } from 'commander';
import { ROLES } from '../../agent/config.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, print, type ShellContext } from '../shell.js';
import { formatStatus } from './status.js';

interface RoleOptions {
  server?: string;
  user?: string;
  password?: string;
  force?: boolean;
}

/** Asks the agent to switch role; resolves with its new status. */
export async function collectRoleSet(ctx: ShellContext, role: string, o: RoleOptions): Promise<unknown> {
  if (!(ROLES as readonly string[]).includes(role)) throw new MfpError('USAGE', `unknown role ${JSON.stringify(role)}; one of ${ROLES.join(', ')}`);
  if (o.user !== undefined && o.password === undefined) throw new MfpError('USAGE', '--user needs --password');
  return control(ctx, 'role.set', { role, server: o.server, user: o.user, password: o.password, force: o.force === true });
}

export function register(program: Command): void {
  const role = program.command('role').description('show or switch this machine\'s role');
  role
    .command('set')
    .argument('<role>', ROLES.join('|'))
    .description('switch role; a client is admitted with the server\'s administrator account')
    .option('--server <host[:port]>', 'the server of a client (default port 8443)')
    .option('--user <id>', 'the server\'s administrator user id (first admission)')
    .option('--password <pw>', 'the server\'s administrator password')
    .option('--force', 'stop serving even though clients are connected')
    .action(action(async (ctx, r: string, o: RoleOptions) => print(ctx, await collectRoleSet(ctx, r, o), formatStatus)));
}
