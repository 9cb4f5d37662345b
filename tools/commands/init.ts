/** `mfpsync init`: creates the data directory and this machine's identity. */
import type { Command } from 'commander';
import { initDataDir, type InitOptions, type InitResult } from '../../agent/config.js';
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
    .action(
      action(async (ctx, o: { name: string; serial: string; location: string; adminUser: string; adminPassword?: string }) => {
        const result = collectInit(ctx, {
          name: o.name,
          serial: o.serial,
          location: o.location,
          adminUser: o.adminUser,
          ...(o.adminPassword !== undefined ? { adminPassword: o.adminPassword } : {}),
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
