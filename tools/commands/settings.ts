/**
 * `mfpsync settings department-ids on|off [--list FILE]`: changes Department ID management and the
 * registered Department IDs of this data directory, with the agent stopped (it reads them at start;
 * every machine of a group must agree, SPEC §6).
 */
import type { Command } from 'commander';
import { dataPaths, readDepartmentIdFile, setDepartmentIds } from '../../agent/config.js';
import { controlAnswers } from '../../agent/control.js';
import { MfpError } from '../../protocol/errors.js';
import { action, print, type ShellContext } from '../shell.js';

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
  const settings = program.command('settings').description('authentication settings every machine of a group must share');
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
