/** `mfpsync run`: the agent, in the foreground, until SIGINT or SIGTERM. */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { AgentOptions } from '../../agent/agent.js';
import { dataPaths, initDataDir, isInitialized } from '../../agent/config.js';
import { offsetClock, systemClock } from '../../agent/clock.js';
import { keepYoungGenerationSmall } from '../../agent/heap.js';
import { MfpError } from '../../protocol/errors.js';
import { DEFAULT_HEARTBEAT_SECONDS, DEFAULT_PORT, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { DEFAULT_UI_PORT, type RemoteUiSettings } from '../../agent/remote-ui/index.js';
import { action, intOption as int, print, type ShellContext } from '../shell.js';
import { formatRemoteUi } from './status.js';

interface RunOptions {
  host?: string;
  port: string;
  heartbeat: string;
  durability: string;
  protocol?: string;
  maxUsers?: string;
  events?: boolean;
  applyDuringLogin?: string;
  backupDir?: string;
  clockSkew?: string;
  uiPort: string;
  uiIdleMs?: string;
  advertise: boolean;
  searchMs?: string;
}

/** Starts the agent and prints a ready line; resolves when it has stopped. */
export async function runAgent(ctx: ShellContext, o: RunOptions): Promise<void> {
  // Every option is checked before the disk is touched: a refused one creates no data directory.
  if (o.durability !== 'fsync' && o.durability !== 'os') throw new MfpError('INVALID_ARGUMENT', 'durability must be fsync or os');
  if (o.applyDuringLogin !== undefined && o.applyDuringLogin !== 'immediate' && o.applyDuringLogin !== 'next-login') {
    throw new MfpError('INVALID_ARGUMENT', 'apply-during-login must be immediate or next-login');
  }
  const options: AgentOptions & RemoteUiSettings = {
    dataDir: ctx.dataDir,
    ...(o.host !== undefined ? { host: o.host } : {}),
    port: int(o.port, 'port', 0, 65535),
    heartbeatSeconds: int(o.heartbeat, 'heartbeat', 1, 3600),
    durability: o.durability,
    ...(o.applyDuringLogin !== undefined ? { applyDuringLogin: o.applyDuringLogin } : {}),
    ...(o.protocol !== undefined ? { protocol: int(o.protocol, 'protocol', 1, PROTOCOL_VERSION) } : {}),
    ...(o.maxUsers !== undefined ? { maxUsers: int(o.maxUsers, 'max-users', 1, 1000) } : {}),
    ...(o.backupDir !== undefined ? { backupDir: resolve(o.backupDir) } : {}),
    // A server answers searches for it (SPEC §13) unless told not to.
    advertise: o.advertise,
    ...(o.searchMs !== undefined ? { searchMs: int(o.searchMs, 'search-ms', 100, 60_000) } : {}),
    ...(o.clockSkew !== undefined ? { clock: offsetClock(systemClock, int(o.clockSkew, 'clock-skew', -86_400_000, 86_400_000)) } : {}),
    uiPort: int(o.uiPort, 'ui-port', 0, 65535),
    ...(o.uiIdleMs !== undefined ? { uiIdleMs: int(o.uiIdleMs, 'ui-idle-ms', 1, 86_400_000) } : {}),
  };
  let initialized: ReturnType<typeof initDataDir> | undefined;
  if (!isInitialized(ctx.dataDir)) initialized = initDataDir(ctx.dataDir, {});
  keepYoungGenerationSmall();
  // Loaded here: the other commands, each a process of its own, need none of the agent.
  const { startDaemon } = await import('../../agent/daemon.js');
  const daemon = await startDaemon(options);
  if (o.events) {
    // One JSON line per agent event on stdout: what a firmware shim or a test follows.
    const { agentEvents } = await import('../../agent/operations.js');
    agentEvents(daemon.agent, (e) => process.stdout.write(JSON.stringify(e) + '\n'));
  }
  const status = daemon.agent.status();
  const ready = { event: 'ready', ...status, control: dataPaths(ctx.dataDir).control, ...(initialized ? { initialized } : {}) };
  // The ready line is one line even with --json: followers read stdout line by line.
  if (ctx.json) process.stdout.write(JSON.stringify(ready) + '\n');
  else print(ctx, ready, () =>
    [
      ...(initialized ? [`initialized ${ctx.dataDir}; administrator password in ${initialized.passwordFile}`] : []),
      `mfpsync ready: ${status.name} (${status.deviceId}), role ${status.role}${status.port ? `, serving on port ${status.port}` : ''}`,
      ...(status.remoteUi ? [formatRemoteUi(status.remoteUi)] : []),
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      void daemon.stop().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run the agent in the foreground (initializes the data directory on first start)')
    .option('--host <addr>', 'address the server listens on (default: all)')
    .option('--port <port>', 'port the server listens on', String(DEFAULT_PORT))
    .option('--heartbeat <seconds>', 'heartbeat interval of the client part', String(DEFAULT_HEARTBEAT_SECONDS))
    .option('--durability <mode>', 'fsync (acknowledge after fsync) or os (after the OS has the write)', 'fsync')
    .option('--protocol <version>', 'protocol version to speak (1, 2 or 3 simulate older firmware)')
    .option('--max-users <n>', 'user bound (default 1000)')
    .option('--apply-during-login <when>', 'a logged-in user\'s changed language/accessibility: immediate or next-login (default: as last set, else immediate)')
    .option('--backup-dir <dir>', 'folder of the device backup slot (default DATA/backup)')
    .option('--ui-port <port>', 'HTTPS port of the Remote UI (0: off)', String(DEFAULT_UI_PORT))
    // For tests: a Remote UI session's idle time in ms (default 30 minutes).
    .addOption(new Option('--ui-idle-ms <ms>', 'Remote UI session idle time').hideHelp())
    .option('--no-advertise', 'a server does not answer searches for it on the LAN (clients then need its address)')
    // For tests: a client's search for its server listens this long (default 3000 ms).
    .addOption(new Option('--search-ms <ms>', 'how long a search for the server listens').hideHelp())
    // For the soak and tests: this process reads a clock MS off (a machine whose time is not set right).
    .addOption(new Option('--clock-skew <ms>', 'run with the clock this many ms off').hideHelp())
    .option('--events', 'print agent events (item-changed, entity-deleted, sync-state, changes-acked, join-progress, deep-sleep, device-state, replicated, login-again) as JSON lines on stdout')
    .action(action(runAgent));
}
