/**
 * Time is injected: heartbeats, the silence timeout and reconnect backoff run on a ManualClock here,
 * moved by hand, with a real server and client (in-process agents, real sockets and LevelDB folders).
 */
import test from 'ava';
import { ManualClock, offsetClock } from '../../agent/clock.js';
import { AgentProcess, humanShell, joinClient, startServer } from '../helpers/agents.js';
import { admit, openAgent } from '../helpers/inprocess.js';


/** Resolves when `cond` holds, checking after each turn of the event loop (I/O is real here). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

test('heartbeats and the 3-missed-heartbeats timeout run on the injected clock; no timer is left', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const server = await openAgent(t, 'server', { clock, heartbeatSeconds: 10 });
  const client = await openAgent(t, 'client', { clock, heartbeatSeconds: 10 });
  await server.setRole('server');
  await admit(client, server.port);
  const id = client.identity.deviceId;
  const device = () => server.listDevices().find((d) => d.id === id)!;
  t.is(device().state, 'operating');

  // One interval later the client's heartbeat reaches the server, stamped with the injected time.
  clock.advance(10_000);
  const beat = clock.now();
  await until(() => device().lastHeartbeat === beat, 'heartbeat recorded');
  t.is(device().skewMs, 0);

  // Three intervals without a frame from the server: the client drops the session (and the server, it).
  const events: { state: string; code?: string }[] = [];
  client.on('sync-state', (s) => events.push({ state: s.state, code: s.error?.code }));
  clock.advance(30_000);
  await until(() => events.some((e) => e.state === 'offline'), 'client noticed silence');
  t.is(events.find((e) => e.state === 'offline')!.code, 'PEER_GONE');
  // Reconnecting waits for the backoff timer, which is on the injected clock: time must move.
  let waited = 0;
  while (client.client!.state !== 'live' && waited < 60_000) {
    clock.advance(250);
    waited += 250;
    await until(() => client.client!.state !== 'connecting', 'connection attempt settled');
  }
  t.is(client.client!.state, 'live');
  t.true(waited <= 30_000, `reconnected after ${waited} ms of injected time (backoff ceiling 30 s)`);

  await client.close();
  await server.close();
  t.is(clock.pending, 0, 'no timer is left once both agents are closed');
});

test('a server refuses to start with an implausible clock', async (t) => {
  const clock = new ManualClock(Date.UTC(2000, 0, 1));
  const a = await openAgent(t, 'stale', { clock });
  const err = await t.throwsAsync(a.setRole('server'));
  t.is(err?.name, 'MfpError');
  t.is((err as { code?: string }).code, 'CLOCK_NOT_SET');
  t.regex(err!.message, /set the time/);
  t.is(a.role, 'standalone');
});

test('an offset clock reads off by its offset and keeps the base clock\'s timers', (t) => {
  const base = new ManualClock(Date.UTC(2026, 5, 1));
  const skewed = offsetClock(base, -90_000);
  t.is(skewed.now(), base.now() - 90_000);
  let fired = 0;
  skewed.setTimeout(() => fired++, 1000);
  base.advance(999);
  t.is(fired, 0);
  base.advance(1);
  t.is(fired, 1);
  t.is(skewed.now(), base.now() - 90_000);
  t.throws(() => offsetClock(base, Number.NaN), { instanceOf: TypeError });
});

test('run --clock-skew: the server reports the client\'s skew and warns once; the option is hidden', async (t) => {
  const { server, port } = await startServer(t, { heartbeat: 1 });
  const client = await AgentProcess.spawn(t, { name: 'skewed', heartbeat: 1, runArgs: ['--clock-skew', '90000'] });
  await joinClient(client, port);
  let row: { name: string; skewMs: number | null } | undefined;
  for (let i = 0; i < 100; i++) {
    const { devices } = await server.control<{ devices: { name: string; skewMs: number | null }[] }>('devices.list');
    row = devices.find((d) => d.name === 'skewed');
    // A session reads 0 until the first ping (one heartbeat, 1 s here) says otherwise.
    if (Math.abs(row?.skewMs ?? 0) > 1000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.true(Math.abs(row!.skewMs! - 90_000) < 2000, `skew reported: ${row?.skewMs} ms`);
  const { entries } = await server.control<{ entries: { code: string }[] }>('log', { level: 'warning' });
  t.is(entries.filter((e) => e.code === 'CLOCK_SKEW').length, 1);
  const help = await humanShell(client.dataDir, 'run', '--help');
  t.notRegex(help.stdout, /clock-skew/);
});
