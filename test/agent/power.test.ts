/**
 * Heartbeats and deep sleep (SPEC §5) on an injected clock: real agents in-process (real sockets and
 * LevelDB folders) whose time moves only by hand, so every timeout is checked to the millisecond and no
 * timer may be left behind.
 */
import test from 'ava';
import type { Agent, DeepSleepEvent, DeviceStateEvent } from '../../agent/agent.js';
import { ManualClock } from '../../agent/clock.js';
import { admit, openAgent, syncState } from '../helpers/inprocess.js';
import { freePort } from '../helpers/agents.js';

/** Resolves when `cond` holds, checking after each turn of the event loop (I/O is real here). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 5000; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

/** The same for a condition that must be read asynchronously (the sync log). */
async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`never happened: ${what}`);
}

function record(server: Agent): { deepSleep: DeepSleepEvent[]; devices: DeviceStateEvent[] } {
  const out = { deepSleep: [] as DeepSleepEvent[], devices: [] as DeviceStateEvent[] };
  server.on('deep-sleep', (e) => out.deepSleep.push(e));
  server.on('device-state', (e) => out.devices.push(e));
  return out;
}

test('deep sleep: blocked while a client heartbeats, released at once when it sleeps, blocked when it wakes, released 3 intervals after it vanishes', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const server = await openAgent(t, 'server', { clock, heartbeatSeconds: 10 });
  const client = await openAgent(t, 'client', { clock, heartbeatSeconds: 10 });
  await server.setRole('server');
  const seen = record(server);
  t.like(server.power(), { deepSleepBlocked: false, blockedBy: [], clients: [] });

  await admit(client, server.port);
  const id = client.identity.deviceId;
  const row = () => server.power().clients!.find((c) => c.deviceId === id)!;
  // The hello is the first heartbeat: the client operates from the moment it is connected.
  t.deepEqual(seen.deepSleep, [{ blocked: true, blockedBy: [id] }]);
  t.like(server.power(), { deepSleepBlocked: true, blockedBy: [id] });
  t.like(row(), { name: 'client', self: false, state: 'operating', timeoutMs: 30_000, lastHeartbeat: clock.now(), expiresAt: clock.now() + 30_000 });
  t.like(server.listDevices().find((d) => d.id === id), { state: 'operating', session: 'live' });

  // Heartbeats keep it blocked well past one timeout; nothing new is emitted.
  for (let i = 0; i < 4; i++) {
    clock.advance(10_000);
    const beat = clock.now();
    await until(() => row().lastHeartbeat === beat, `heartbeat ${i + 1}`);
  }
  t.like(row(), { state: 'operating', expiresAt: clock.now() + 30_000 });
  t.is(seen.deepSleep.length, 1);

  // The machine goes to sleep: the server is told and releases deep sleep at once, not after a timeout.
  const asleep = await client.sleep();
  t.like(asleep, { asleep: true, deepSleepBlocked: false, client: { state: 'sleeping', operating: false } });
  t.deepEqual(seen.deepSleep.at(-1), { blocked: false, blockedBy: [] });
  t.like(row(), { state: 'sleeping', expiresAt: null });
  t.like(server.listDevices().find((d) => d.id === id), { state: 'sleeping', session: null });
  await eventually(async () => (await server.syncLog()).some((e) => e.code === 'SLEEPING' && e.deviceId === id), 'SLEEPING logged');
  t.is(clock.pending, 0, 'a sleeping client keeps no timer, and the server keeps none for it');
  // Sleeping is not missing heartbeats: time passes and nothing changes.
  clock.advance(120_000);
  t.is(seen.deepSleep.length, 2);
  t.is(row().state, 'sleeping');

  // It wakes: it reconnects at once and blocks deep sleep again.
  const live = syncState(client, 'live');
  t.like(await client.wake(), { asleep: false });
  await live;
  t.deepEqual(seen.deepSleep.at(-1), { blocked: true, blockedBy: [id] });
  t.is(row().state, 'operating');

  // It vanishes without saying so (as after SIGKILL): the session ends, but the client may be
  // reconnecting, so it counts until three of its intervals after its last heartbeat.
  const expiresAt = row().expiresAt!;
  await client.close();
  await until(() => server.listDevices().find((d) => d.id === id)!.session === null, 'session closed');
  t.is(row().state, 'operating');
  clock.advance(expiresAt - clock.now() - 1);
  t.true(server.power().deepSleepBlocked, 'still blocked 1 ms before the timeout');
  clock.advance(1);
  t.like(server.power(), { deepSleepBlocked: false, blockedBy: [] });
  t.is(row().state, 'offline');
  t.deepEqual(seen.deepSleep, [
    { blocked: true, blockedBy: [id] },
    { blocked: false, blockedBy: [] },
    { blocked: true, blockedBy: [id] },
    { blocked: false, blockedBy: [] },
  ]);
  t.deepEqual(seen.devices.map((e) => [e.deviceId, e.name, e.state]), [
    [id, 'client', 'operating'],
    [id, 'client', 'sleeping'],
    [id, 'client', 'operating'],
    [id, 'client', 'offline'],
  ]);

  await server.close();
  t.is(clock.pending, 0, 'no timer is left once the agents are closed');
});

test('deep sleep: each operating client is listed; one sleeping leaves the others blocking', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const server = await openAgent(t, 'server', { clock });
  const a = await openAgent(t, 'A', { clock });
  const b = await openAgent(t, 'B', { clock });
  await server.setRole('server');
  const seen = record(server);
  await admit(a, server.port);
  await admit(b, server.port);
  const [ida, idb] = [a.identity.deviceId, b.identity.deviceId];
  const both = [ida, idb].sort();
  t.deepEqual(seen.deepSleep, [{ blocked: true, blockedBy: [ida] }, { blocked: true, blockedBy: both }]);
  await a.sleep();
  t.deepEqual(seen.deepSleep.at(-1), { blocked: true, blockedBy: [idb] });
  await b.sleep();
  t.deepEqual(seen.deepSleep.at(-1), { blocked: false, blockedBy: [] });
  // Sleeping twice tells nobody twice.
  await b.sleep();
  t.is(seen.deepSleep.length, 4);
  await a.close();
  await b.close();
  await server.close();
  t.is(clock.pending, 0);
});

test('a server-client\'s own client blocks its deep sleep until it sleeps', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const sc = await openAgent(t, 'SC', { clock });
  const seen = record(sc);
  await sc.setRole('server-client');
  const id = sc.identity.deviceId;
  t.deepEqual(seen.deepSleep, [{ blocked: true, blockedBy: [id] }]);
  const power = sc.power();
  t.like(power, { role: 'server-client', deepSleepBlocked: true, blockedBy: [id], client: { state: 'live', operating: true } });
  t.like(power.clients, [{ deviceId: id, name: 'SC', self: true, state: 'operating' }]);
  t.is(sc.listDevices()[0]!.state, 'operating');

  await sc.sleep();
  t.deepEqual(seen.deepSleep.at(-1), { blocked: false, blockedBy: [] });
  t.like(sc.power(), { asleep: true, deepSleepBlocked: false, client: { state: 'sleeping' } });
  t.is(sc.listDevices()[0]!.state, 'sleeping');

  const live = syncState(sc, 'live');
  await sc.wake();
  await live;
  t.deepEqual(seen.deepSleep.at(-1), { blocked: true, blockedBy: [id] });

  // Leaving the server role releases it: nothing serves, nothing blocks.
  await sc.setRole('standalone');
  t.deepEqual(seen.deepSleep.at(-1), { blocked: false, blockedBy: [] });
  t.like(sc.power(), { role: 'standalone', deepSleepBlocked: false, blockedBy: [] });
  await sc.close();
  t.is(clock.pending, 0);
});

test('a client that sleeps while its server is unreachable keeps no timer, and reconnects on waking', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const port = await freePort();
  const server = await openAgent(t, 'server', { clock, port });
  const client = await openAgent(t, 'client', { clock });
  await server.setRole('server');
  await admit(client, port);
  const offline = syncState(client, 'offline');
  await server.setRole('standalone', { force: true });
  await offline;
  t.true(clock.pending > 0, 'the reconnect timer runs');
  t.like(await client.sleep(), { asleep: true, client: { state: 'sleeping', operating: false } });
  t.is(clock.pending, 0, 'asleep, the client does not retry');
  await server.setRole('server');
  const live = syncState(client, 'live');
  await client.wake();
  await live;
  t.like(server.power(), { deepSleepBlocked: true, blockedBy: [client.identity.deviceId] });
});

test('the first reconnect after losing the server is jittered: nine clients do not come back at once', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const port = await freePort();
  const server = await openAgent(t, 'server', { clock, port });
  await server.setRole('server');
  const clients = await Promise.all(Array.from({ length: 9 }, (_, i) => openAgent(t, `c${i + 1}`, { clock })));
  for (const c of clients) await admit(c, port);

  // The server goes away and comes straight back: every client's first attempt succeeds.
  const offline = clients.map((c) => syncState(c, 'offline'));
  await server.setRole('standalone', { force: true });
  await Promise.all(offline);
  await server.setRole('server');
  const lostAt = clock.now();
  const attempts: number[] = [];
  for (const c of clients) c.once('sync-state', (s) => { if (s.state === 'connecting') attempts.push(clock.now() - lostAt); });
  const live = clients.map((c) => syncState(c, 'live'));
  clock.advance(500);
  await Promise.all(live);

  attempts.sort((x, y) => x - y);
  t.log(`first reconnect attempts, ms after the loss: ${attempts.map((a) => a.toFixed(1)).join(', ')}`);
  t.is(attempts.length, 9);
  t.true(attempts.every((a) => a >= 0 && a <= 500), 'within the first backoff window (0.5 s)');
  t.is(new Set(attempts).size, 9, 'no two at the same instant');
  t.true(attempts.at(-1)! - attempts[0]! > 10, `spread ${(attempts.at(-1)! - attempts[0]!).toFixed(1)} ms`);
  const connected = (await server.syncLog()).filter((e) => e.code === 'CONNECTED' && e.at >= lostAt);
  t.is(connected.length, 9);
  t.true(connected.every((e) => / resuming by cursor$/.test(e.message)), 'each resumed by cursor');
});

test('a client whose clock is off by more than 60 s is a Warning in the server\'s sync log, once per session', async (t) => {
  const start = Date.UTC(2026, 5, 1);
  const serverClock = new ManualClock(start);
  const ahead = new ManualClock(start + 310_000);
  const behind = new ManualClock(start - 120_000);
  const close = new ManualClock(start + 20_000);
  const server = await openAgent(t, 'server', { clock: serverClock, heartbeatSeconds: 10 });
  const a = await openAgent(t, 'ahead', { clock: ahead, heartbeatSeconds: 10 });
  const b = await openAgent(t, 'behind', { clock: behind, heartbeatSeconds: 10 });
  const c = await openAgent(t, 'close', { clock: close, heartbeatSeconds: 10 });
  await server.setRole('server');
  for (const x of [a, b, c]) await admit(x, server.port);
  const skew = (x: Agent) => server.listDevices().find((d) => d.id === x.identity.deviceId)!.skewMs;

  // Three heartbeats from each: the skew is measured from each ping.
  for (let i = 0; i < 3; i++) {
    for (const [agent, clock] of [[a, ahead], [b, behind], [c, close]] as const) {
      clock.advance(10_000);
      const expected = clock.now() - serverClock.now();
      await until(() => skew(agent) === expected, `ping ${i + 1} of ${agent.identity.deviceId}`);
    }
  }
  t.is(skew(a), 340_000);
  t.is(skew(b), -90_000);
  t.is(skew(c), 50_000);
  await eventually(async () => (await server.syncLog('warning')).filter((e) => e.code === 'CLOCK_SKEW').length >= 2, 'warnings');
  const warnings = (await server.syncLog('warning')).filter((e) => e.code === 'CLOCK_SKEW');
  t.deepEqual(warnings.map((w) => w.deviceId).sort(), [a.identity.deviceId, b.identity.deviceId].sort(), 'one per skewed client, not one per heartbeat');
  t.regex(warnings.find((w) => w.deviceId === a.identity.deviceId)!.message, /^ahead \(.+\): its clock is 320 s ahead of the server's \(bound 60 s\)/);
  t.regex(warnings.find((w) => w.deviceId === b.identity.deviceId)!.message, /its clock is 110 s behind the server's/);
  // The client estimates its own skew from each pong.
  t.is(a.power().client!.skewMs, 340_000);

  // status shows it at a glance, on the server and on the skewed client.
  const s = server.status();
  t.is(s.health, 'yellow');
  t.deepEqual(s.healthReasons.map((r) => r.code), ['CLOCK_SKEW', 'CLOCK_SKEW']);
  const own = a.status();
  t.is(own.health, 'yellow');
  t.like(own.healthReasons, [{ level: 'yellow', code: 'CLOCK_SKEW' }]);
  t.is(c.status().health, 'green');
});
