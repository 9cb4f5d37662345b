/**
 * Every procedure of the manual's "Changing the Canon Multifunction Machines to Synchronize"
 * (../shared/manual/004-changing-machines.txt), step by step as the manual words it, end to end with
 * agents as real processes and a real Samba share for the SMB steps, numbered as in the README's
 * "Replacing machines, step by step": 1 the server replaced by a synchronized client; 2 the server moved
 * to a machine that is not synchronized; 3 the server replaced by its replication destination; 4 the
 * server moved to another machine by recovery from the replica when replication cannot be stopped; 5 a
 * client replaced, one stopped and one dead.
 *
 * Each comment quotes the manual's step; the shell commands under it are the step in mfpsync. Steps
 * mfpsync adds or does differently say so ("mfpsync: …"). Every procedure ends with: every user's data
 * on every machine (the content checksums a join compares, after each user logged in everywhere), a
 * change made after the move reaching every client, and no conflict log entry anywhere (the groups
 * are built without conflicting edits, so any entry would be the move's doing). Each procedure's time
 * from its first step to the end of those checks is logged for the README.
 *
 * What other files already prove is not repeated here: CLIENTS_ACTIVE on a role change (faults.test.ts),
 * the bytes a client's resume costs, the recovery's confirmation and wrong password, a promoted replica
 * keeping its epoch (replication.test.ts).
 */
import { performance } from 'node:perf_hooks';
import test, { type ExecutionContext } from 'ava';
import type { ReplicationStatus } from '../../agent/replicator.js';
import { userRecord } from '../../tools/bench/records.js';
import { AgentProcess, freePort, joinClient, startServer } from '../helpers/agents.js';
import { startSamba, type Samba } from '../helpers/samba.js';

const ADMIN = ['--user', 'admin', '--password', 'secret-pw'];
const ITEMS = ['address-list', 'job-defaults', 'language'] as const;
type Err = { error: { code: string; message: string } };
type Status = { role: string; port?: number; client?: { state: string; queued: number; server: string }; group?: { groupId: string; seq: number; epoch: string; devices: number } };
/** `kind:id` → content checksum, from `users list --checksums`. */
type Sums = Record<string, string | null>;

/** A user's items (realistic records) written on a machine through its control socket: setup, not the procedure. */
async function work(agent: AgentProcess, users: string[], variant: number): Promise<void> {
  for (const u of users) {
    await agent.control('login', { user: u });
    const rec = userRecord(u, variant);
    for (const item of ITEMS) await agent.control('item.set', { kind: 'user', id: u, item, value: rec[item] });
  }
}

/** A user group's address list, written on a machine. */
async function groupList(agent: AgentProcess, id: string, variant: number): Promise<void> {
  await agent.control('item.set', { kind: 'group', id, item: 'address-list', value: userRecord(`g${id}`, variant)['address-list'] });
}

/** Polls `read` until `ok` holds or 20 s pass; returns the last reading (the caller asserts on it). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until a machine's client part has nothing queued (every change acknowledged). */
async function settled(t: ExecutionContext, ...agents: AgentProcess[]): Promise<void> {
  for (const a of agents) {
    const s = await until(() => a.control<Status>('status'), (s) => s.client?.queued === 0 && s.client.state === 'live');
    t.is(s.client?.queued, 0, `${a.options.name} settled`);
  }
}

/** The content checksum of every user and user group a machine holds (the group's copy on a server). */
async function sums(agent: AgentProcess): Promise<Sums> {
  const { users } = await agent.control<{ users: { kind: string; id: string; checksum?: string | null }[] }>('users.list', { search: '', checksums: true });
  return Object.fromEntries(users.map((u) => [`${u.kind}:${u.id}`, u.checksum ?? null]));
}

/** Every user of `expected` logs in on the client; then it must hold exactly what the server held before the move. */
async function holdsAll(t: ExecutionContext, client: AgentProcess, expected: Sums): Promise<void> {
  for (const key of Object.keys(expected)) if (key.startsWith('user:')) await client.control('login', { user: key.slice(5) });
  const equal = (s: Sums) => JSON.stringify(Object.entries(s).sort()) === JSON.stringify(Object.entries(expected).sort());
  t.deepEqual(await until(() => sums(client), equal), expected, `every user's data on ${client.options.name}`);
}

/** The values of every user's items and the group lists, as a machine's `item.get` reads them. */
async function values(agent: AgentProcess, expected: Sums): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(expected)) {
    const [kind, id] = key.split(':') as ['user' | 'group', string];
    const { items } = await agent.control<{ items: Record<string, { value: unknown }> }>('item.get', { kind, id });
    for (const item of kind === 'user' ? ITEMS : (['address-list'] as const)) out[`${key}/${item}`] = items[item]?.value;
  }
  return out;
}

/** No conflict log entry on any of the machines (local and, on a server, the group's). */
async function noConflicts(t: ExecutionContext, agents: AgentProcess[], when: string): Promise<void> {
  for (const a of agents) {
    const { conflicts } = await a.control<{ conflicts: unknown[] }>('conflicts.list');
    t.deepEqual(conflicts, [], `${a.options.name}'s conflict log ${when}`);
  }
}

async function language(agent: AgentProcess, user: string): Promise<unknown> {
  const { items } = await agent.control<{ items: Record<string, { value: unknown }> }>('item.get', { kind: 'user', id: user, item: 'language' });
  return items.language?.value;
}

/** Setup: a machine admitted as a client of 127.0.0.1:port (the shell's `role set client`, through the control socket). */
async function admit(agent: AgentProcess, port: number): Promise<void> {
  await agent.control('role.set', { role: 'client', server: `127.0.0.1:${port}`, user: 'admin', password: 'secret-pw' });
}

/** A change made on `writer` after the move reaches every other client (a remote item-changed there). */
async function changeReaches(t: ExecutionContext, writer: AgentProcess, user: string, clients: AgentProcess[], server: AgentProcess): Promise<void> {
  const value = { display: 'pt', keyboard: `pt-BR-${writer.options.name}` };
  const marks = clients.map((c) => c.events.length);
  await writer.control('item.set', { kind: 'user', id: user, item: 'language', value });
  for (const [i, c] of clients.entries()) {
    await c.waitRemote(user, 'language', marks[i]);
    t.deepEqual(await language(c, user), value, `the change after the move on ${c.options.name}`);
  }
  t.deepEqual(await until(() => language(server, user), (v) => JSON.stringify(v) === JSON.stringify(value)), value, 'and on the server');
}

/** Seconds since `t0`, for the closing note. */
function seconds(t0: number): string {
  return ((performance.now() - t0) / 1000).toFixed(1);
}

/** Network backup arguments: `backup --to URL --user U --password P`, `restore --from URL --share-user …`. */
function share(smb: Samba): { url: string; backup: string[]; restore: string[] } {
  const url = smb.url('backups');
  return { url, backup: ['--to', url, '--user', smb.user, '--password', smb.password], restore: ['--from', url, '--share-user', smb.user, '--share-password', smb.password] };
}

test('procedure 1, Changing the Server Machine (When Replication Is Not Set): When Replacing a Synchronized Client Machine', async (t) => {
  t.timeout(180_000);
  const smb = await startSamba(t, { shares: [{ name: 'backups' }] });
  if (!smb) return;
  const nas = share(smb);
  // The server's address (its port) is kept: the new server takes it over (the manual's IMPORTANT).
  const address = await freePort();
  const { server } = await startServer(t, { port: address });
  const [c1, c2, c3] = await Promise.all(['c1', 'c2', 'c3'].map((name) => AgentProcess.spawn(t, { name })));
  for (const c of [c1!, c2!, c3!]) await admit(c, address);
  await work(c1!, ['ann', 'ben'], 1);
  await work(c2!, ['dan'], 2);
  await work(c3!, ['eve'], 3);
  await groupList(c2!, '01', 1);
  await settled(t, c1!, c2!, c3!);
  const expected = await sums(server);
  t.is(Object.keys(expected).length, 5);
  await noConflicts(t, [server, c1!, c2!, c3!], 'before the move');

  const t0 = performance.now();
  // "Administrator privileges are required to change the server machine." (the shell is the agent owner's)
  // 1 "Stop synchronization on each client machine."
  for (const s of await Promise.all([c1!, c2!, c3!].map((c) => c.ok<Status>('role', 'set', 'standalone')))) t.is(s.role, 'standalone');
  // 2 "On the server machine, save the backup data to an SMB server on the network."
  await server.ok('backup', ...nas.backup);
  // 3 "Stop synchronization on the server machine." The old machine is then retired.
  await server.ok('role', 'set', 'standalone');
  await server.kill('SIGTERM');
  // 4 "On the client machine that will be the new server machine, start synchronization as a server
  // machine." IMPORTANT: "it is recommended to adjust the network settings (IP address and host name)
  // on the new server machine to match the settings of the old server machine": c1 takes the old port.
  c1!.options.port = address;
  await c1!.kill('SIGTERM');
  await c1!.start();
  t.is((await c1!.ok<Status>('role', 'set', 'server')).port, address);
  // mfpsync: until step 5 the new server serves a group of its own at the old address. A client started
  // now is refused before it sends anything (GROUP_MISMATCH: not its pinned group) and stays stopped.
  const early = await c3!.sh('role', 'set', 'client', '--server', `127.0.0.1:${address}`);
  t.is((early.json as Err).error.code, 'GROUP_MISMATCH');
  t.is((await c3!.control<Status>('status')).role, 'standalone');
  // 5 "Restore the backup data saved in Step 2 on the new server machine in Step 4." The group
  // administrator's account opens the backup's group key (c1 never held it).
  await c1!.ok('restore', ...nas.restore, ...ADMIN);
  t.deepEqual(await sums(c1!), expected, 'every user\'s data on the new server');
  // 6 "Start synchronization on the client machines." Same address, group pinned: no password, no restart.
  for (const s of await Promise.all([c2!, c3!].map((c) => c.ok<Status>('role', 'set', 'client', '--server', `127.0.0.1:${address}`)))) t.is(s.client?.state, 'live');

  for (const c of [c2!, c3!]) await holdsAll(t, c, expected);
  // mfpsync: a pure server's own edits reach the clients (the manual: not without client functions).
  await changeReaches(t, c1!, 'ann', [c2!, c3!], c1!);
  await noConflicts(t, [c1!, c2!, c3!], 'after the move');
  t.log(`procedure 1, server replaced by a synchronized client: ${seconds(t0)} s`);
});

test('procedure 2, Changing the Server Machine (When Replication Is Not Set): Changing to Another Canon Multifunction Machine That Is Not Synchronized', async (t) => {
  t.timeout(180_000);
  const smb = await startSamba(t, { shares: [{ name: 'backups' }] });
  if (!smb) return;
  const nas = share(smb);
  // The original server also has its client function enabled (server-client) and users of its own.
  const server = await AgentProcess.spawn(t, { name: 'server' });
  const { port } = await server.control<Status>('role.set', { role: 'server-client' });
  const [c1, c2, fresh] = await Promise.all([
    AgentProcess.spawn(t, { name: 'c1' }),
    AgentProcess.spawn(t, { name: 'c2' }),
    // Another machine, never synchronized, with an administrator password of its own.
    AgentProcess.spawn(t, { name: 'new', adminPassword: 'new-pw' }),
  ]);
  for (const c of [c1!, c2!]) await admit(c, port!);
  await work(server, ['sam'], 1);
  await work(c1!, ['ann', 'ben'], 1);
  await work(c2!, ['dan'], 2);
  await groupList(c1!, '02', 1);
  await settled(t, server, c1!, c2!);

  const t0 = performance.now();
  // * "If the client function is enabled on the original server machine, it is recommended to disable
  // this beforehand."
  t.is((await server.ok<Status>('role', 'set', 'server')).role, 'server');
  const expected = await sums(server);
  const expectedValues = await values(server, expected);
  t.is(Object.keys(expected).length, 5);
  await noConflicts(t, [server, c1!, c2!], 'before the move');
  // 1 "On the server machine, save the backup data to an SMB server on the network."
  const { destination } = await server.ok<{ destination: string }>('backup', ...nas.backup);
  t.regex(destination, /\/mfpsync-\w+\.mfpb$/, 'the backup answers with the file it wrote');
  // 2 "Stop synchronization on the server machine." mfpsync: the clients are still connected (this
  // procedure does not stop them), so stopping the server needs --force (CLIENTS_ACTIVE otherwise).
  await server.ok('role', 'set', 'standalone', '--force');
  await server.kill('SIGTERM');
  // 3 "On the multifunction machine that will be the new server machine, start synchronization as a
  // server machine."
  const { port: newPort } = await fresh!.ok<Status>('role', 'set', 'server');
  // 4 "Restore the backup data saved in Step 1 on the new server machine in Step 3." mfpsync: a machine
  // that was never in the group names the file (a share's folder holds one file per group, named by the
  // group id, which a member finds by its pin); the group administrator's password opens its group key
  // (the machine's own account, new-pw, does not).
  await fresh!.ok('restore', '--from', destination, ...nas.restore.slice(2), ...ADMIN);
  t.deepEqual(await sums(fresh!), expected, 'every user\'s data on the new server');
  // 5 "To enable the client function on the new server machine, start synchronization as a client machine."
  t.is((await fresh!.ok<{ client: { state: string } }>('role', 'set', 'server-client')).client.state, 'live');
  // The clients kept running; the new machine has another address (IMPORTANT: "the client machines may
  // not synchronize properly until the information to connect to the server machine is changed"):
  // each is pointed at it, without a password (its group is pinned) and without a restart.
  for (const s of await Promise.all([c1!, c2!].map((c) => c.ok<Status>('role', 'set', 'client', '--server', `127.0.0.1:${newPort}`)))) t.is(s.client?.state, 'live');

  for (const c of [c1!, c2!]) await holdsAll(t, c, expected);
  // The new server-client's own client: every user logs in there and gets the group's data.
  for (const key of Object.keys(expected)) if (key.startsWith('user:')) await fresh!.control('login', { user: key.slice(5) });
  const same = (v: Record<string, unknown>) => JSON.stringify(v) === JSON.stringify(expectedValues);
  t.deepEqual(await until(() => values(fresh!, expected), same), expectedValues, 'every user\'s data on the new server-client\'s own client');
  // A change made on the new machine (through its client function) reaches every client.
  await changeReaches(t, fresh!, 'sam', [c1!, c2!], fresh!);
  await noConflicts(t, [fresh!, c1!, c2!], 'after the move');
  t.log(`procedure 2, server moved to a machine that is not synchronized: ${seconds(t0)} s`);

  // A machine joining after the move is admitted with the new server's own administrator account;
  // the old group administrator's password opened the backup but admits no one here.
  const late = await AgentProcess.spawn(t, { name: 'late' });
  const refused = await late.sh('role', 'set', 'client', '--server', `127.0.0.1:${newPort}`, ...ADMIN);
  t.is((refused.json as Err).error.code, 'AUTH_INCORRECT');
  await joinClient(late, newPort!, 'new-pw');
  await holdsAll(t, late, await sums(fresh!));
  // The same move through a USB stick (`backup --to DIR`, `restore --from FILE`): test/agent/backup.test.ts.
});

/** A replica on a fixed port (a replica restarts on the same address). */
async function startReplica(t: ExecutionContext): Promise<{ replica: AgentProcess; port: number }> {
  const port = await freePort();
  const replica = await AgentProcess.spawn(t, { name: 'replica', port });
  await replica.control('role.set', { role: 'replica' });
  return { replica, port };
}

/**
 * A group replicating to its destination: a server, two clients with users of their own and a user
 * group's list, replication started before they worked; ends with a last copy holding every change.
 */
async function replicatingGroup(t: ExecutionContext): Promise<{ server: AgentProcess; replica: AgentProcess; replicaAt: string; clients: AgentProcess[]; expected: Sums }> {
  const [{ server, port }, { replica, port: replicaPort }, c1, c2] = await Promise.all([
    startServer(t),
    startReplica(t),
    AgentProcess.spawn(t, { name: 'c1' }),
    AgentProcess.spawn(t, { name: 'c2' }),
  ]);
  const replicaAt = `127.0.0.1:${replicaPort}`;
  await server.control('replication.start', { to: replicaAt, user: 'admin', password: 'secret-pw', interval: 600, threshold: 100_000 });
  for (const c of [c1, c2]) await admit(c, port);
  await work(c1, ['ann', 'ben'], 1);
  await work(c2, ['dan'], 2);
  await groupList(c2, '03', 1);
  await settled(t, c1, c2);
  const expected = await sums(server);
  t.is(Object.keys(expected).length, 4);
  // mfpsync: the changes the server acknowledged after the last copy are not on the replica. Once the
  // clients' changes are acknowledged, a last copy is taken (`replication start` again copies at once).
  const last = await server.ok<ReplicationStatus>('replication', 'start', '--to', replicaAt, ...ADMIN);
  t.is(last.lastRun!.seq, (await server.control<Status>('status')).group!.seq, 'the last copy holds every change');
  // Run again, it keeps the interval and threshold of the first start.
  t.like(last, { intervalMinutes: 600, threshold: 100_000 });
  await noConflicts(t, [server, replica, c1, c2], 'before the move');
  return { server, replica, replicaAt, clients: [c1, c2], expected };
}

test('procedure 3, Changing the Server Machine (When Replication Is Set): When Replacing the Server Machine with A Canon Multifunction Machine That Is a Replication Destination', async (t) => {
  t.timeout(180_000);
  const { server, replica, replicaAt, clients, expected } = await replicatingGroup(t);

  const t0 = performance.now();
  // 1 "Stop replication on the server machine."
  t.like(await server.ok('replication', 'stop'), { stopped: true });
  // The stop released the destination: it holds its last copy and no relation to the server.
  t.like(await replica.ok('replication', 'status'), { role: 'replica', relation: null });
  // 2 "Stop synchronization on the server machine." mfpsync: the clients are still connected (they are
  // stopped in step 4), so stopping the server needs --force (CLIENTS_ACTIVE otherwise).
  await server.ok('role', 'set', 'standalone', '--force');
  await server.kill('SIGTERM');
  // 3 "On the replication destination multifunction machine, start synchronization as a server machine."
  t.is((await replica.ok<Status>('role', 'set', 'server')).role, 'server');
  t.deepEqual(await sums(replica), expected, 'every user\'s data on the new server');
  // 4 "Configure the connection settings of each client machine."
  //   1 "Stop synchronization on each client machine."
  await Promise.all(clients.map((c) => c.ok('role', 'set', 'standalone')));
  //   2 "On each client machine, enable the synchronization function and change the settings for
  //   connecting to the server machine." The group is pinned and the replica serves it: no password.
  for (const s of await Promise.all(clients.map((c) => c.ok<Status>('role', 'set', 'client', '--server', replicaAt)))) t.is(s.client?.state, 'live');

  for (const c of clients) await holdsAll(t, c, expected);
  await changeReaches(t, clients[0]!, 'dan', clients.slice(1), replica);
  await noConflicts(t, [replica, ...clients], 'after the move');
  t.log(`procedure 3, server replaced by its replication destination: ${seconds(t0)} s`);
});

test('procedure 4, Changing the Server Machine (When Replication Is Set): Changing to Another Canon Multifunction Machine, when replication cannot be stopped', async (t) => {
  t.timeout(180_000);
  const { server, replica, replicaAt, clients, expected } = await replicatingGroup(t);
  const fresh = await AgentProcess.spawn(t, { name: 'new' });

  const t0 = performance.now();
  // 1 "Stop replication on the server machine." "You can skip this step if you cannot stop replication
  // due to a malfunction of the server machine or other factor. Proceed to Step 2." The server fails here.
  await server.kill('SIGKILL');
  // 2 "Stop synchronization on the server machine." (It is out of order: nothing to do.)
  // 3 "On the multifunction machine that will be the new server machine, start synchronization as a
  // server machine."
  const { port: newPort } = await fresh.ok<Status>('role', 'set', 'server');
  // 4 "Recover the replication data on the new server machine in Step 3." ("confirm that the time that
  // the data was replicated indicated on the confirmation dialog is the expected time": --yes here.)
  t.like(await fresh.ok('recover', '--from', replicaAt, ...ADMIN, '--yes'), { loaded: true });
  // (The [Device] slot deleted by a recovery and by a replication run: test/agent/replication.test.ts.)
  t.deepEqual(await sums(fresh), expected, 'every user\'s data on the new server');
  // 5 "Configure the connection settings of each client machine." "You can skip this step if the new
  // server machine has the same IP address and host name as the old server machine." It has not.
  //   1 "Stop synchronization on each client machine."
  await Promise.all(clients.map((c) => c.ok('role', 'set', 'standalone')));
  //   2 "On each client machine, enable the synchronization function and change the settings for
  //   connecting to the server machine."
  for (const s of await Promise.all(clients.map((c) => c.ok<Status>('role', 'set', 'client', '--server', `127.0.0.1:${newPort}`)))) t.is(s.client?.state, 'live');

  for (const c of clients) await holdsAll(t, c, expected);
  await changeReaches(t, clients[1]!, 'ann', clients.slice(0, 1), fresh);
  await noConflicts(t, [fresh, ...clients], 'after the move');
  // mfpsync: the destination is tied to a group, not to a machine, and the recovered server serves the
  // same group: it takes the destination over as it is, without the workaround below.
  const seq = (await fresh.control<Status>('status')).group!.seq;
  t.is((await fresh.ok<{ lastRun: { seq: number } }>('replication', 'start', '--to', replicaAt, ...ADMIN)).lastRun.seq, seq);
  // * (to step 1) "If you cannot stop replication, the multifunction machine set as the replication
  // destination cannot be set as the replication destination of another server machine. In this case,
  // on the multifunction machine acting as the replication destination, start synchronization as a
  // server machine, and then stop synchronization. (Replication is canceled when synchronization as a
  // server machine starts.)" mfpsync: after step 4, since a destination that started as a server holds
  // no copy to recover from any more (`recover` answers NOT_FOUND: "holds no copy yet").
  await fresh.ok('replication', 'stop');
  await replica.ok('role', 'set', 'server');
  await replica.ok('role', 'set', 'standalone');
  // mfpsync: being a destination is a role (`role set replica`); the machine takes it again, tied to no server.
  await replica.ok('role', 'set', 'replica');
  t.like(await replica.control('replication.status'), { relation: null, last: null }, 'the destination is tied to no server and holds no copy');
  // It can be any server's destination again: the new server's, with every change.
  t.is((await fresh.ok<{ lastRun: { seq: number } }>('replication', 'start', '--to', replicaAt, ...ADMIN)).lastRun.seq, seq);
  t.log(`procedure 4, server moved to another machine by recovery from the replica, replication not stopped: ${seconds(t0)} s`);
});

test('procedure 5, Changing a Client Machine: one stopped, one that died and is removed from the server', async (t) => {
  t.timeout(180_000);
  const { server, port } = await startServer(t);
  const [old, dead, new1, new2] = await Promise.all(['old', 'dead', 'new1', 'new2'].map((name) => AgentProcess.spawn(t, { name })));
  for (const c of [old!, dead!]) await admit(c, port);
  await work(old!, ['ann', 'ben'], 1);
  await work(dead!, ['dan'], 2);
  await groupList(dead!, '04', 1);
  await settled(t, old!, dead!);
  const expected = await sums(server);
  t.is(Object.keys(expected).length, 4);
  await noConflicts(t, [server, old!, dead!], 'before the change');
  const ids = { old: String(old!.ready!.deviceId), dead: String(dead!.ready!.deviceId) };
  const listed = async () => (await server.control<{ devices: { id: string }[] }>('devices.list')).devices.map((d) => d.id);
  await dead!.kill('SIGKILL');

  const t0 = performance.now();
  // 1 "Stop synchronization on the old client machine."
  await old!.ok('role', 'set', 'standalone');
  // "* Until you stop synchronization of the client machine, it is still counted as a connected machine
  // even after the change." mfpsync: a client that stops keeps its slot (it may start again without a
  // password, as the server-replacing procedures have it do); its slot is freed on the server.
  t.true((await listed()).includes(ids.old), 'a stopped client keeps its slot');
  await server.ok('devices', 'remove', ids.old);
  // "If you cannot stop synchronization due to a malfunction on the old client machine, stop the client
  // machine synchronization from the server machine." ([Confirm Device Information], [Delete])
  t.true((await listed()).includes(ids.dead), 'a dead client is counted until it is removed');
  await server.ok('devices', 'remove', ids.dead);
  t.deepEqual(await listed(), [String(server.ready!.deviceId)]);
  // 2 "Start synchronization on the multifunction machine to be a new client machine." "Synchronization
  // starts after the machine is restarted." mfpsync: at once, no restart.
  for (const s of await Promise.all([new1!, new2!].map((c) => c.ok<Status>('role', 'set', 'client', '--server', `127.0.0.1:${port}`, ...ADMIN)))) t.is(s.client?.state, 'live');
  t.is((await server.control<Status>('status')).group!.devices, 3);

  for (const c of [new1!, new2!]) await holdsAll(t, c, expected);
  await changeReaches(t, new1!, 'dan', [new2!], server);
  await noConflicts(t, [server, new1!, new2!], 'after the change');
  // The dead machine, should it come back, is refused until it is admitted again.
  const back = dead!.events.length;
  await dead!.start();
  await dead!.waitFor((e) => e.event === 'sync-state' && (e as { error?: { code: string } }).error?.code === 'DEVICE_REMOVED', 30_000, back);
  t.log(`procedure 5, clients replaced (one stopped, one dead and removed on the server): ${seconds(t0)} s`);
});
