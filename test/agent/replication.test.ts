/**
 * End to end: replication (SPEC §9) with agents as real processes and faults injected with the
 * project's TCP proxy and SIGKILL — the start errors in the manual's words (an older version among
 * them); the first full copy and incremental ones that send only what changed; the interval and the
 * change threshold as triggers; a copy cut midway or killed with the target, leaving the previous copy
 * whole; REPLICATION_RUNNING for a backup during a run; `replication stop` (and a role change) releasing
 * the destination for another server; changing the destination only after a stop; a start again
 * keeping the interval and threshold; the device backup slot deleted by a run and by a recovery;
 * replacing the server by its replica (procedure 2), with the client resuming by checksum; and a new
 * machine recovering from the replica.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { ReplicationStatus } from '../../agent/replicator.js';
import { FaultProxy } from '../../tools/proxy.js';
import { userRecord } from '../../tools/bench/records.js';
import { AgentProcess, freePort, joinClient, startServer, type AgentEvent } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';

const ADMIN = ['--user', 'admin', '--password', 'secret-pw'];
const STAMP = /\d{4}\/\d\d\/\d\d \d\d:\d\d/;
const WAITING = new RegExp(`^Waiting for replication\\.\\.\\. To change the \\[Destination Device for Replication\\], first perform \\[Stop Replication\\], then change device\\. Last Replication : ${STAMP.source}`);
const DEST = /^A device that cannot be used as the destination for replication is set\. Select a different device\. Case: /;

/** A replica on a fixed port (it restarts on the same address). */
async function startReplica(t: Parameters<typeof AgentProcess.spawn>[0], name = 'replica', initArgs: string[] = [], runArgs: string[] = []): Promise<{ replica: AgentProcess; port: number }> {
  const port = await freePort();
  const replica = await AgentProcess.spawn(t, { name, port, initArgs, runArgs });
  await replica.ok('role', 'set', 'replica');
  return { replica, port };
}

/** Writes `n` users with realistic records on a server (through its control socket: bulk setup). */
async function seedUsers(server: AgentProcess, n: number, variant = 0, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const rec = userRecord(`user${i}`, variant);
    for (const item of ['address-list', 'job-defaults', 'language'] as const) {
      await server.control('item.set', { kind: 'user', id: `user${i}`, item, value: rec[item] });
    }
  }
}

/** Waits until the replica reports a run installed with a sequence number above `seq`. */
function replicatedAfter(replica: AgentProcess, seq: number, since = 0): Promise<AgentEvent> {
  return replica.waitFor((e) => e.event === 'replicated' && Number(e.seq) > seq, 30_000, since);
}

test('replication start refuses an unreachable target, a server, a wrong password, Department IDs, an older version and a target of another group', async (t) => {
  const [{ server }, { replica, port: replicaPort }, { port: deptPort }, { port: oldPort }] = await Promise.all([
    startServer(t),
    startReplica(t),
    startReplica(t, 'dept', ['--department-ids', 'on']),
    startReplica(t, 'old', [], ['--protocol', '1']),
  ]);
  const { server: other, port: otherPort } = await startServer(t, { name: 'other' });
  const nobody = await freePort();

  const refused = async (agent: AgentProcess, to: number, code: string, exit: number, message: RegExp, args = ADMIN) => {
    const r = await agent.sh('replication', 'start', '--to', `127.0.0.1:${to}`, ...args);
    t.is(r.code, exit, `${code}: ${r.stderr}`);
    const e = (r.json as { error: { code: string; message: string } }).error;
    t.is(e.code, code);
    t.regex(e.message, message, code);
  };
  // The manual's start errors, with which of the four cases a DEST_UNSUPPORTED is.
  await refused(server, nobody, 'ADDRESS_INCORRECT', 5, /^The \[Address\] is incorrect\. — cannot reach/);
  await refused(server, otherPort, 'DEST_UNSUPPORTED', 4, new RegExp(`${DEST.source}the machine has started custom setting synchronization \\(server\\)`));
  await refused(server, replicaPort, 'AUTH_INCORRECT', 4, /^The authentication information is incorrect\. — /, ['--user', 'admin', '--password', 'wrong']);
  await refused(server, deptPort, 'DEST_UNSUPPORTED', 4, new RegExp(`${DEST.source}<Department ID Management> is enabled on the machine`));
  await refused(server, oldPort, 'DEST_UNSUPPORTED', 4, new RegExp(`${DEST.source}the version of the machine is old — .*replication 1; this server needs 2`));
  t.is((await server.sh('replication', 'status')).code, 7, 'nothing configured after refusals');

  const started = await server.ok<ReplicationStatus>('replication', 'start', '--to', `127.0.0.1:${replicaPort}`, ...ADMIN);
  t.regex(started.message, new RegExp(`${WAITING.source}$`));
  t.is(started.runs, 1);
  // Paired with this group now: another server is refused even with the right account.
  await refused(other, replicaPort, 'DEST_UNSUPPORTED', 4, new RegExp(`${DEST.source}another server is set as the replication destination`));
  const onReplica = await replica.ok<{ message: string; last: { groupId: string } }>('replication', 'status');
  t.regex(onReplica.message, /^Replica of group \S+ from server/);
  t.is(onReplica.last.groupId, (await server.ok<{ group: { groupId: string } }>('status')).group.groupId);
  // A replica is not a server: a client pointed at it is told so.
  const client = await AgentProcess.spawn(t, { name: 'c' });
  const wrong = await client.sh('role', 'set', 'client', '--server', `127.0.0.1:${replicaPort}`, ...ADMIN);
  t.is((wrong.json as { error: { code: string } }).error.code, 'NOT_A_SERVER');
});

test('incremental copies send what changed; a cut or a killed target leaves the previous copy; promotion keeps every user', async (t) => {
  const { server, port } = await startServer(t);
  const client = await AgentProcess.spawn(t, { name: 'c1' });
  await seedUsers(server, 150);
  await joinClient(client, port);
  await client.ok('login', 'user3');
  const { replica, port: replicaPort } = await startReplica(t);
  const proxy = await FaultProxy.start({ targetPort: replicaPort });
  t.teardown(() => proxy.close());
  // Runs are triggered by a client starting (SPEC §9), which the test controls.
  const restartClient = async () => {
    await client.kill('SIGTERM');
    await client.start();
  };

  const first = await server.ok<ReplicationStatus>('replication', 'start', '--to', `127.0.0.1:${proxy.port}`, ...ADMIN, '--threshold', '100000', '--interval', '600');
  const full = first.lastRun!;
  t.is(full.buckets, full.totalBuckets, 'the first copy is full');

  // Two users' items change: a few small buckets travel, not the database.
  let mark = replica.events.length;
  await server.ok('user', 'set', 'user7', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  await server.ok('user', 'set', 'user8', 'language', '{"display":"de","keyboard":"de-DE"}');
  await restartClient();
  await replicatedAfter(replica, full.seq, mark);
  const inc = (await waitStatus(server, (s) => s.runs >= 2)).lastRun!;
  t.true(inc.bytes * 10 < full.bytes, `incremental ${inc.bytes} B vs full ${full.bytes} B`);
  t.log(`first copy ${full.bytes} B (${full.totalBuckets} buckets); incremental after 2 changes ${inc.bytes} B (${inc.buckets} buckets)`);

  // A run cut midway: the replica keeps the previous copy, the server says so and retries later.
  const before = await replica.ok<{ last: { seq: number } }>('replication', 'status');
  t.is(before.last.seq, inc.seq);
  await seedUsers(server, 150, 1);
  // Counted per connection: the run's connection is cut after 20 KB of the transfer.
  proxy.cutAfter('up', 20_000);
  await restartClient();
  const failed = await waitStatus(server, (s) => s.lastError !== null);
  t.regex(failed.message, new RegExp(`^Could not perform replication after ${STAMP.source} because an error occurred\\. Check the settings for \\[Destination Device for Replication\\] and the status of the destination device\\.$`));
  t.is((await replica.ok<{ last: { seq: number } }>('replication', 'status')).last.seq, before.last.seq, 'the replica kept its copy');

  // The replica killed midway through a slow run: it restarts with the previous copy.
  proxy.cutAfter('up', undefined);
  proxy.sliceBytes = 2048;
  proxy.delayMs = 5;
  const started = proxy.bytes.up;
  await restartClient();
  await new Promise<void>((resolve) => {
    const check = () => (proxy.bytes.up > started + 30_000 ? resolve() : setImmediate(check));
    check();
  });
  await replica.kill('SIGKILL');
  await replica.start();
  t.is((await replica.ok<{ last: { seq: number } }>('replication', 'status')).last.seq, before.last.seq, 'a killed target keeps its previous copy');
  proxy.sliceBytes = 0;
  proxy.delayMs = 0;
  await waitStatus(server, (s) => s.state !== 'running');

  // The next trigger copies again, and completes.
  mark = replica.events.length;
  await restartClient();
  const seqNow = (await server.ok<{ group: { seq: number } }>('status')).group.seq;
  await replica.waitFor((e) => e.event === 'replicated' && Number(e.seq) === seqNow, 30_000, mark);

  // Procedure 2: stop the client, stop the server, start the replica as the server at a new address.
  const expected: Record<string, unknown> = {};
  for (const u of ['user0', 'user7', 'user9', 'user149']) expected[u] = await server.value('user', u, 'job-defaults');
  await client.kill('SIGTERM');
  await server.kill('SIGTERM');
  const promoted = await replica.ok<{ role: string; group: { seq: number } }>('role', 'set', 'server');
  t.is(promoted.role, 'server');
  t.is(promoted.group.seq, seqNow);
  for (const [u, v] of Object.entries(expected)) t.deepEqual(await replica.value('user', u, 'job-defaults'), v, u);
  // The client is repointed through a proxy that counts what the switch costs: a checksum resume.
  const counter = await FaultProxy.start({ targetPort: replicaPort });
  t.teardown(() => counter.close());
  await client.start();
  await client.ok('role', 'set', 'client', '--server', `127.0.0.1:${counter.port}`);
  const switched = counter.bytes.up + counter.bytes.down;
  t.true(switched * 4 < full.bytes, `a switch cost ${switched} B; a full copy is ${full.bytes} B`);
  t.log(`bytes on the wire for the client's resume after the switch: ${switched} (up ${counter.bytes.up}, down ${counter.bytes.down})`);
  t.deepEqual(await client.value('user', 'user3', 'job-defaults'), await replica.value('user', 'user3', 'job-defaults'));

  // The promoted replica took the group over once: restarted, it keeps its epoch, so its clients resume
  // by cursor instead of resyncing by checksum at every restart (found by the soak, seed 7).
  const epoch = (await replica.ok<{ group: { epoch: string } }>('status')).group.epoch;
  await replica.kill('SIGKILL');
  await replica.start();
  t.is((await replica.ok<{ group: { epoch: string } }>('status')).group.epoch, epoch);
  const { entries } = await replica.ok<{ entries: { code: string }[] }>('log');
  t.is(entries.filter((e) => e.code === 'TOOK_OVER').length, 1);
});

/** Polls `replication status` until `pred` holds (a run's outcome arrives asynchronously). */
async function waitStatus(agent: AgentProcess, pred: (s: ReplicationStatus) => boolean): Promise<ReplicationStatus> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await agent.ok<ReplicationStatus>('replication', 'status');
    if (pred(s) || Date.now() > deadline) return s;
  }
}

test('a backup during a replication run is refused with REPLICATION_RUNNING; a new machine recovers from the replica', async (t) => {
  const { server } = await startServer(t);
  await seedUsers(server, 60);
  const { port: replicaPort } = await startReplica(t);
  const slow = await FaultProxy.start({ targetPort: replicaPort });
  t.teardown(() => slow.close());
  // The run's connection is held until the backup has been asked for: it is under way, however loaded the machine.
  slow.stall();
  const run = server.sh('replication', 'start', '--to', `127.0.0.1:${slow.port}`, ...ADMIN);
  await new Promise<void>((resolve) => slow.once('connection', () => resolve()));
  const busy = await server.sh('backup', '--to', 'device');
  slow.resume();
  t.is((busy.json as { error?: { code: string } }).error?.code, 'REPLICATION_RUNNING', busy.stdout);
  t.is(busy.code, 6);
  t.is((await run).code, 0);
  t.is((await server.sh('backup', '--to', 'device')).code, 0, 'after the run, a backup goes through');

  // A new server recovers: it shows the copy's time first, loads only when confirmed.
  const freshSlot = tempDir(t);
  const { server: fresh } = await startServer(t, { name: 'new', runArgs: ['--backup-dir', freshSlot] });
  await fresh.ok('backup', '--to', 'device');
  const wrong = await fresh.sh('recover', '--from', `127.0.0.1:${replicaPort}`, '--user', 'admin', '--password', 'nope', '--yes');
  t.is((wrong.json as { error: { code: string } }).error.code, 'AUTH_INCORRECT');
  const unconfirmed = await fresh.sh('recover', '--from', `127.0.0.1:${replicaPort}`, ...ADMIN);
  t.is((unconfirmed.json as { error: { code: string } }).error.code, 'USAGE', 'no silent recovery without --yes in a script');
  const probe = await fresh.control<{ loaded: boolean; replica: { at: number; counts: { users: number } } }>('recover', { from: `127.0.0.1:${replicaPort}`, user: 'admin', password: 'secret-pw', confirm: false });
  t.false(probe.loaded);
  t.is(probe.replica.counts.users, 60);
  t.is((await fresh.ok<{ users: unknown[] }>('users', 'list')).users.length, 0, 'nothing loaded before confirmation');
  t.true(existsSync(join(freshSlot, 'mfpsync-backup.mfpb')), 'a declined recovery leaves the device slot');
  const loaded = await fresh.ok<{ loaded: boolean }>('recover', '--from', `127.0.0.1:${replicaPort}`, ...ADMIN, '--yes');
  t.true(loaded.loaded);
  t.false(existsSync(join(freshSlot, 'mfpsync-backup.mfpb')), 'a recovery deletes the device slot');
  t.is((await fresh.ok<{ users: unknown[] }>('users', 'list')).users.length, 60);
  t.deepEqual(await fresh.value('user', 'user5', 'address-list'), await server.value('user', 'user5', 'address-list'));
  const groups = [await server.ok<{ group: { groupId: string; groupKey: string } }>('status'), await fresh.ok<{ group: { groupId: string; groupKey: string; epoch: string } }>('status')];
  t.is(groups[1]!.group.groupId, groups[0]!.group.groupId, 'the group and its key travel with the replica');
  t.is(groups[1]!.group.groupKey, groups[0]!.group.groupKey);
  const log = await fresh.ok<{ runs: { op: string; result: string }[] }>('backup', 'log');
  t.like(log.runs.at(-1), { op: 'recover', result: 'ok' });
});

/** The server's sync log lines of runs triggered by `reason`. */
async function runsBy(server: AgentProcess, reason: string): Promise<number> {
  const { entries } = await server.ok<{ entries: { code: string; message: string }[] }>('log');
  return entries.filter((e) => e.code === 'REPLICATED' && e.message.startsWith(`replication (${reason})`)).length;
}

/** Polls the server's log until `n` runs by `reason` are in it (a run's log line follows its install). */
async function waitRuns(server: AgentProcess, reason: string, n: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = await runsBy(server, reason);
    if (got >= n || Date.now() > deadline) return got;
  }
}

test('the interval and the change threshold trigger runs; a run deletes the device backup slot; a start again keeps the settings', async (t) => {
  const slot = tempDir(t);
  const [{ server }, { replica, port: replicaPort }] = await Promise.all([startServer(t, { runArgs: ['--backup-dir', slot] }), startReplica(t)]);
  await seedUsers(server, 5);
  await server.ok('backup', '--to', 'device');
  const to = `127.0.0.1:${replicaPort}`;

  // The interval: every 0.01 min (0.6 s), no change needed; the replica reports each run installed.
  let mark = replica.events.length;
  const first = await server.ok<ReplicationStatus>('replication', 'start', '--to', to, ...ADMIN, '--interval', '0.01', '--threshold', '100000');
  t.false(existsSync(join(slot, 'mfpsync-backup.mfpb')), 'a replication run deletes the device slot');
  let installed = 0;
  await replica.waitFor((e) => e.event === 'replicated' && ++installed === 2, 30_000, mark);
  t.true((await waitRuns(server, 'interval', 1)) >= 1, 'a run by the interval');
  t.is(first.runs, 1);

  // Started again without settings: the interval and threshold stay (the README's "a last copy").
  const again = await server.ok<ReplicationStatus>('replication', 'start', '--to', to, ...ADMIN);
  t.like(again, { intervalMinutes: 0.01, threshold: 100000 });
  t.true(again.runs >= 2, `runs go on counting: ${again.runs}`);

  // The threshold: a long interval, and more changes than 3 since the last run start one.
  const slow = await server.ok<ReplicationStatus>('replication', 'start', '--to', to, ...ADMIN, '--interval', '600', '--threshold', '3');
  t.like(slow, { intervalMinutes: 600, threshold: 3 });
  const seq = (await server.ok<{ group: { seq: number } }>('status')).group.seq;
  mark = replica.events.length;
  t.is(await runsBy(server, 'threshold'), 0);
  for (let i = 0; i < 4; i++) await server.control('item.set', { kind: 'user', id: `user${i}`, item: 'language', value: { display: 'fr', keyboard: `fr-${i}` } });
  await replicatedAfter(replica, seq, mark);
  t.true((await waitRuns(server, 'threshold', 1)) >= 1, 'a run past the threshold');
  const kept = await server.ok<ReplicationStatus>('replication', 'start', '--to', to, ...ADMIN, '--threshold', '50');
  t.like(kept, { intervalMinutes: 600, threshold: 50 }, 'only what is given changes');
});

test('replication stop releases the destination for another server; changing it needs a stop first; a role change stops and releases too', async (t) => {
  const [{ server }, { server: other }, { replica, port: r1 }, { replica: replica2, port: r2 }] = await Promise.all([
    startServer(t),
    startServer(t, { name: 'other' }),
    startReplica(t),
    startReplica(t, 'replica2'),
  ]);
  const start = (agent: AgentProcess, port: number, ...more: string[]) => agent.sh('replication', 'start', '--to', `127.0.0.1:${port}`, ...ADMIN, ...more);
  const errorOf = (r: { json?: unknown }) => (r.json as { error: { code: string; message: string } }).error;
  t.is((await start(server, r1, '--interval', '30', '--threshold', '50')).code, 0);

  // Another destination while one is configured: the manual's message, the configuration unchanged.
  const change = await start(server, r2);
  t.is(change.code, 6);
  t.is(errorOf(change).code, 'STOP_REPLICATION_FIRST');
  t.regex(errorOf(change).message, WAITING);
  t.regex(errorOf(change).message, new RegExp(`replicating to 127\\.0\\.0\\.1:${r1}`));
  t.like(await server.ok<ReplicationStatus>('replication', 'status'), { to: `127.0.0.1:${r1}`, intervalMinutes: 30, threshold: 50 });
  t.is((await replica2.ok<{ relation: unknown }>('replication', 'status')).relation, null, 'the other destination was not touched');
  t.is(errorOf(await start(other, r1)).code, 'DEST_UNSUPPORTED', 'paired: another server is refused');

  // Stopped: the destination is released (its copy stays), and another server can pair with it.
  const stopped = await server.ok<{ stopped: boolean; released: boolean; message: string }>('replication', 'stop');
  t.like(stopped, { stopped: true, released: true });
  const freed = await replica.ok<{ relation: unknown; last: { groupId: string } | null; message: string }>('replication', 'status');
  t.is(freed.relation, null);
  t.truthy(freed.last, 'the last copy stays, for a recovery');
  t.regex(freed.message, /^Released: /);
  t.is((await start(other, r1)).code, 0, 'another server pairs with the released destination');
  // The first server now changes its destination; after a stop its settings start from the defaults.
  t.like(await server.ok<ReplicationStatus>('replication', 'start', '--to', `127.0.0.1:${r2}`, ...ADMIN), { intervalMinutes: 60, threshold: 1000 });

  // A role change stops replication and releases the destination as well.
  await server.ok('role', 'set', 'standalone');
  t.is((await server.sh('replication', 'status')).code, 7, 'nothing configured on the former server');
  t.is((await replica2.ok<{ relation: unknown }>('replication', 'status')).relation, null, 'the role change released it');
  t.is((await other.ok('replication', 'stop') as { released: boolean }).released, true);
  t.is((await start(other, r2)).code, 0, 'another server pairs with it');

  // A destination that cannot be told (off): the stop happens, and says how to free it.
  await replica2.kill('SIGTERM');
  const unreleased = await other.ok<{ stopped: boolean; released: boolean; message: string }>('replication', 'stop');
  t.like(unreleased, { stopped: true, released: false });
  t.regex(unreleased.message, /could not be told .*role set server/);
  t.is((await other.sh('replication', 'status')).code, 7);
});
