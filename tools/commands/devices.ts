/** `mfpsync devices list [--filter Q]` / `devices remove DEVICE_ID`: Confirm Device Information (SPEC §8). */
import type { Command } from 'commander';
import type { DeviceEntry } from '../../agent/agent.js';
import { action, control, formatTime, print, table, type ShellContext } from '../shell.js';

/** Lists the group's machines, filtered by partial match. */
export async function collectDevices(ctx: ShellContext, filter: string): Promise<{ devices: DeviceEntry[] }> {
  return (await control(ctx, 'devices.list', { filter })) as { devices: DeviceEntry[] };
}

/** Removes a client from the group. */
export async function collectRemove(ctx: ShellContext, id: string): Promise<{ removed: string }> {
  return (await control(ctx, 'devices.remove', { id })) as { removed: string };
}

export function register(program: Command): void {
  const devices = program.command('devices').description('the machines of this server\'s group');
  devices
    .command('list')
    .option('--filter <q>', 'partial match on id, name, serial or location', '')
    .action(
      action(async (ctx, o: { filter: string }) =>
        print(ctx, await collectDevices(ctx, o.filter), (r: { devices: DeviceEntry[] }) =>
          table(
            ['DEVICE ID', 'NAME', 'SERIAL', 'LOCATION', 'STATE', 'SESSION', 'LAST HEARTBEAT', 'VERSION', 'SKEW', 'LAG'],
            r.devices.map((d) => [
              d.id, d.name, d.serial, d.location, d.state, d.session ?? '-', formatTime(d.lastHeartbeat), `${d.version}/p${d.protocol}`,
              d.skewMs === null ? '-' : `${d.skewMs} ms`, String(d.cursorLag),
            ]),
          ),
        ),
      ),
    );
  devices
    .command('remove')
    .argument('<device-id>')
    .description('remove a client: frees its slot; it is refused until re-admitted')
    .action(action(async (ctx, id: string) => print(ctx, await collectRemove(ctx, id), () => `removed ${id}`)));
}
