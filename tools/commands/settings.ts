/**
 * `mfpsync settings department-ids on|off [--list FILE]`: changes Department ID management and the
 * registered Department IDs of this data directory, with the agent stopped (it reads them at start;
 * every machine of a group must agree, SPEC §6).
 */
import type { Command } from 'commander';
import { dataPaths, readDepartmentIdFile, setDepartmentIds } from '../../agent/config.js';
import { controlAnswers } from '../../agent/control.js';
import { MfpError } from '../../protocol/errors.js';
import { action, control, print, type ShellContext } from '../shell.js';

/** Writes the setting (pure apart from the file it writes); refused while the agent runs. */
export async function collectDepartmentIds(ctx: ShellContext, mode: string, o: { list?: string }): Promise<{ departmentIds: boolean; registered: number }> {
  if (mode !== 'on' && mode !== 'off') throw new MfpError('USAGE', 'settings department-ids takes on or off');
  if (await controlAnswers(dataPaths(ctx.dataDir).control)) {
    throw new MfpError('AGENT_RUNNING', 'stop the agent first: it reads its authentication settings when it starts');
  }
  const list = o.list === undefined ? undefined : readDepartmentIdFile(o.list);
  return setDepartmentIds(ctx.dataDir, { on: mode === 'on', ...(list ? { list } : {}) });
}

export function register(program: Command): void {
  const settings = program.command('settings').description('authentication settings every machine of a group must share, and how changes apply during a login');
  settings
    .command('apply-during-login')
    .argument('[when]', 'immediate or next-login (absent: show the setting)')
    .description('[Allow custom settings to be applied during operation]: a logged-in user\'s changed language/accessibility applies immediately or at the next login (the running agent; kept across restarts)')
    .action(
      action(async (ctx, when?: string) => {
        if (when !== undefined && when !== 'immediate' && when !== 'next-login') throw new MfpError('USAGE', 'settings apply-during-login takes immediate or next-login');
        const r = (await control(ctx, 'settings.applyDuringLogin', when === undefined ? {} : { value: when })) as { applyDuringLogin: string };
        print(ctx, r, (x: { applyDuringLogin: string }) => `Allow custom settings to be applied during operation: ${x.applyDuringLogin === 'immediate' ? 'on (immediately)' : 'off (at the next login)'}`);
      }),
    );
  settings
    .command('department-ids')
    .argument('<on|off>', 'Department ID management')
    .option('--list <file>', 'the Department IDs registered on this machine, one per line (replaces the registered ones)')
    .description('change Department ID management and the registered Department IDs (agent stopped)')
    .action(
      action(async (ctx, mode: string, o: { list?: string }) =>
        print(ctx, await collectDepartmentIds(ctx, mode, o), (r: { departmentIds: boolean; registered: number }) =>
          `Department ID management ${r.departmentIds ? 'on' : 'off'}, ${r.registered} Department ID(s) registered; start the agent to apply`),
      ),
    );
}
