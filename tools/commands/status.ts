/** `mfpsync status`: a one-look summary of the running agent. */
import type { Command } from 'commander';
import type { Agent } from '../../agent/agent.js';
import { action, control, print, type ShellContext } from '../shell.js';

type Status = ReturnType<Agent['status']>;

/** Asks the agent for its status. */
export async function collectStatus(ctx: ShellContext): Promise<Status> {
  return (await control(ctx, 'status')) as Status;
}

/** The Remote UI's line: where it listens and the fingerprint to compare with the browser's. */
export function formatRemoteUi(ui: { port: number; fingerprint: string }): string {
  return `remote UI: https on port ${ui.port}, certificate SHA-256 ${ui.fingerprint}`;
}

/** The human form. */
export function formatStatus(s: Status): string {
  const lines = [
    `device:   ${s.name} (${s.deviceId})${s.serial ? ` serial ${s.serial}` : ''}${s.location ? ` at ${s.location}` : ''}`,
    `software: ${s.software} (protocol ${s.protocol})`,
    `role:     ${s.role}${s.port ? `, serving on port ${s.port}` : ''}`,
  ];
  if (s.group) {
    lines.push(`group:    ${s.group.groupId}, ${s.group.devices}/10 machines, ${s.group.connected} client(s) connected, ${s.group.users} users, seq ${s.group.seq}`);
    lines.push(`group key fingerprint: ${s.group.groupKey}`);
  }
  if (s.client) {
    lines.push(`client:   ${s.client.state} → ${s.client.server}${s.client.foundBy ? ` (found by ${s.client.foundBy})` : ''}, cursor ${s.client.cursor}, ${s.client.queued} change(s) queued`);
    if (s.client.groupKey) lines.push(`pinned group key: ${s.client.groupKey} (group ${s.client.groupId})`);
    if (s.client.error) lines.push(`last error: ${s.client.error.code}: ${s.client.error.message}`);
    for (const l of s.client.loginAgain ?? []) lines.push(`Synchronize Custom Settings: Log in again for synchronization. (user ${l.user}: ${l.detail})`);
  }
  lines.push(s.remoteUi ? formatRemoteUi(s.remoteUi) : 'remote UI: off');
  lines.push(`users on this machine: ${s.localUsers}`);
  lines.push(`health:   ${s.health}`);
  for (const r of s.healthReasons) lines.push(`  ${r.level}: ${r.code}: ${r.message}`);
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('status')
    .description('show this machine\'s role and synchronization state')
    .action(action(async (ctx) => print(ctx, await collectStatus(ctx), formatStatus)));
}
