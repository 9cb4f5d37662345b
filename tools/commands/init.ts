/** `mfpsync init`: creates the data directory and this machine's identity. */
import { Option, type Command } from 'commander';
import { initDataDir, readDepartmentIdFile, type InitOptions, type InitResult } from '../../agent/config.js';
import { ensureCertificate } from '../../agent/remote-ui/certificate.js';
import { MfpError } from '../../protocol/errors.js';
import { action, print, type ShellContext } from '../shell.js';

/** What `init` made: the identity, and the Remote UI's certificate with its fingerprint. */
export type InitReport = InitResult & { uiCertificate?: string };

/**
 * Creates the identity and the Remote UI's certificate (pure apart from the files it writes). Without
 * `certificate` (tests whose agents run with the Remote UI off) the agent makes it when it first serves.
 */
export async function collectInit(ctx: ShellContext, options: InitOptions, certificate = true): Promise<InitReport> {
  const result = initDataDir(ctx.dataDir, options);
  if (!certificate) return result;
  const cert = await ensureCertificate(ctx.dataDir, { name: result.name });
  return { ...result, uiCertificate: cert.fingerprint };
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
    .option('--department-id-list <file>', 'the Department IDs registered on this machine, one per line (needs --department-ids on); every machine of a group must register the same')
    // For test fleets that run with the Remote UI off: ~0.2 s less per init (pkijs is not loaded).
    .addOption(new Option('--no-ui-certificate', 'leave the Remote UI certificate to the first start').hideHelp())
    .action(
      action(async (ctx, o: { name: string; serial: string; location: string; adminUser: string; adminPassword?: string; loginService: string; departmentIds: string; departmentIdList?: string; uiCertificate: boolean }) => {
        if (o.departmentIds !== 'on' && o.departmentIds !== 'off') throw new MfpError('USAGE', '--department-ids takes on or off');
        const departmentIdList = o.departmentIdList === undefined ? undefined : readDepartmentIdFile(o.departmentIdList);
        const result = await collectInit(ctx, {
          name: o.name,
          serial: o.serial,
          location: o.location,
          adminUser: o.adminUser,
          ...(o.adminPassword !== undefined ? { adminPassword: o.adminPassword } : {}),
          settings: { loginService: o.loginService, departmentIds: o.departmentIds === 'on' },
          ...(departmentIdList ? { departmentIdList } : {}),
        }, o.uiCertificate);
        print(ctx, result, (r: InitReport) =>
          [
            `initialized ${r.dataDir}`,
            `device id: ${r.deviceId}`,
            `administrator: ${r.adminUser}`,
            ...(r.uiCertificate ? [`Remote UI certificate SHA-256: ${r.uiCertificate}`] : []),
            ...(r.departmentIds !== undefined ? [`Department IDs registered: ${r.departmentIds}`] : []),
            ...(r.passwordFile ? [`generated administrator password written to ${r.passwordFile}`] : []),
          ].join('\n'),
        );
      }),
    );
}
