/**
 * `mfpsync power status | sleep | wake` (SPEC §5): whether the server's deep sleep is blocked and by
 * which clients; the firmware saying the machine goes to sleep or woke up.
 */
import type { Command } from 'commander';
import type { PowerStatus } from '../../agent/agent.js';
import { action, control, formatTime, print, table, type ShellContext } from '../shell.js';

/** Asks the agent whether deep sleep is blocked, and the clients' states. */
export async function collectPowerStatus(ctx: ShellContext): Promise<PowerStatus> {
  return (await control(ctx, 'power.status')) as PowerStatus;
}

/** The machine goes to sleep: its client part tells the server and stops heartbeats. */
export async function collectSleep(ctx: ShellContext): Promise<PowerStatus> {
  return (await control(ctx, 'power.sleep')) as PowerStatus;
}

/** The machine woke up: its client part reconnects and resumes by cursor. */
export async function collectWake(ctx: ShellContext): Promise<PowerStatus> {
  return (await control(ctx, 'power.wake')) as PowerStatus;
}

/** The human form. */
export function formatPower(p: PowerStatus): string {
  const names = new Map((p.clients ?? []).map((c) => [c.deviceId, c.name]));
  const lines = [
    `deep sleep: ${p.deepSleepBlocked ? `blocked by ${p.blockedBy.map((id) => `${names.get(id) ?? '?'} (${id})`).join(', ')}` : 'not blocked'}`,
    `this machine: ${p.asleep ? 'asleep' : 'awake'}, role ${p.role}, heartbeat every ${p.heartbeatSeconds} s (offline after ${p.timeoutMs / 1000} s of silence)`,
  ];
  if (p.client) lines.push(`client part: ${p.client.state}${p.client.operating ? ', operating' : ''}${p.client.skewMs === null ? '' : `, clock skew ${p.client.skewMs} ms`}`);
  if (p.clients) {
    lines.push(
      table(
        ['DEVICE ID', 'NAME', 'STATE', 'LAST HEARTBEAT', 'TIMEOUT', 'SKEW'],
        p.clients.map((c) => [
          c.deviceId, `${c.name}${c.self ? ' (this machine)' : ''}`, c.state, formatTime(c.lastHeartbeat),
          c.timeoutMs === null ? '-' : `${c.timeoutMs / 1000} s`, c.skewMs === null ? '-' : `${c.skewMs} ms`,
        ]),
      ),
    );
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  const power = program.command('power').description('deep sleep and heartbeats');
  power
    .command('status')
    .description('whether deep sleep is blocked (a client is operating), and each client\'s state')
    .action(action(async (ctx) => print(ctx, await collectPowerStatus(ctx), formatPower)));
  power
    .command('sleep')
    .description('the machine goes to sleep: tell the server, stop heartbeats')
    .action(action(async (ctx) => print(ctx, await collectSleep(ctx), formatPower)));
  power
    .command('wake')
    .description('the machine woke up: reconnect and resume by cursor')
    .action(action(async (ctx) => print(ctx, await collectWake(ctx), formatPower)));
}
