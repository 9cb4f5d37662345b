/** `mfpsync init`: creates the data directory and this machine's identity. */
import type { Command } from 'commander';
import { initDataDir, type InitOptions, type InitResult } from '../../agent/config.js';
import { MfpError } from '../../protocol/errors.js';
import { action, print, type ShellContext } from '../shell.js';

/** Creates the identity (pure apart from the files it writes). */
export function collectInit(ctx: ShellContext, options: InitOptions): InitResult {
  return initDataDir(ctx.dataDir, options);
}

export function register(program: Command): void {
  program
    .command('init')
    .description('create the data directory and this machine\'s identity')
    .requiredOption('--name <name>', 'device name')
    .option('--serial <sn>', 'serial number', '')
    .option('--location <loc>', 'location', '')
    .option('--admin-user <id>', 'administrator user id', 'admin')
    .option('--admin-password <pw>', 'administrator password (generated and written to a file if omitted)')
    .option('--login-service <name>', 'login service; every machine of a group must use the same', 'user-authentication')
    .option('--department-ids <on|off>', 'Department ID management; every machine of a group must agree', 'off')
    .action(
      action(async (ctx, o: { name: string; serial: string; location: string; adminUser: string; adminPassword?: string; loginService: string; departmentIds: string }) => {
        if (o.departmentIds !== 'on' && o.departmentIds !== 'off') throw new MfpError('USAGE', '--department-ids takes on or off');
        const result = collectInit(ctx, {
          name: o.name,
          serial: o.serial,
          location: o.location,
          adminUser: o.adminUser,
          ...(o.adminPassword !== undefined ? { adminPassword: o.adminPassword } : {}),
          settings: { loginService: o.loginService, departmentIds: o.departmentIds === 'on' },
        });
        print(ctx, result, (r: InitResult) =>
          [
            `initialized ${r.dataDir}`,
            `device id: ${r.deviceId}`,
            `administrator: ${r.adminUser}`,
            ...(r.passwordFile ? [`generated administrator password written to ${r.passwordFile}`] : []),
          ].join('\n'),
        );
      }),
    );
}
