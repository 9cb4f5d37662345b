/**
 * End to end, the manual's Monday morning: several clients (real agent processes) start synchronizing
 * at the same moment, each holding its own data for a user the server lacks. Joins run one at a time
 * on the server, so the first client to connect wins; the others get its data and keep theirs in their
 * conflict logs. The joins are made simultaneous by the fault proxy (every connection held until all
 * are there, then released together), and the first client's upload is held until the others are
 * queued behind its join: were the server to take joins side by side, a later client would upload
 * first and win.
 */
import test from 'ava';
import { FaultProxy } from '../../tools/proxy.js';
import { AgentProcess, startServer } from '../helpers/agents.js';

interface LogEntry {
  code: string;
  message: string;
  deviceId?: string;
}

interface Conflict {
  log: string;
  entity: string;
  item: string;
  reason: string;
  value: unknown;
}

const NAMES = ['A', 'B', 'C'] as const;
const LANGUAGES = [{ display: 'fr', keyboard: 'fr-FR' }, { display: 'de', keyboard: 'de-DE' }, { display: 'it', keyboard: 'it-IT' }];
/** A client's own address list for monday: about 20 KB, so that its upload stands out from the handshake and the offer (under 4 KB). */
const addressList = (name: string) => Array.from({ length: 300 }, (_, i) => ({ name: `${name}'s contact ${i}`, email: `contact${i}@${name.toLowerCase()}.example.com` }));
/** Bytes a client sends before its upload (WebSocket upgrade, hello, join offer) stay below this; its upload takes it past. */
const UPLOAD_MARK = 12_000;

/** Resolves once `cond` holds, checked every few milliseconds (the server's sync log is read through its control socket). */
async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never happened: ${what}`);
}

test('Monday morning: three clients join at the same moment with their own data for a user the server lacks; the first to connect wins', async (t) => {
  const [{ server, port }, ...clients] = await Promise.all([startServer(t), ...NAMES.map((name) => AgentProcess.spawn(t, { name }))] as const);
  const ids: string[] = [];
  for (const [i, c] of clients.entries()) {
    await c.control('item.set', { kind: 'user', id: 'monday', item: 'language', value: LANGUAGES[i] });
    await c.control('item.set', { kind: 'user', id: 'monday', item: 'address-list', value: addressList(NAMES[i]) });
    await c.control('item.set', { kind: 'user', id: `own${NAMES[i]}`, item: 'home', value: { wallpaper: NAMES[i] } });
    ids.push((await c.control<{ deviceId: string }>('status')).deviceId);
  }
  const value = async (agent: AgentProcess, item: string) =>
    (await agent.control<{ items: Record<string, { value: unknown }> }>('item.get', { kind: 'user', id: 'monday', item })).items[item]!.value;
  const serverLog = async () => (await server.control<{ entries: LogEntry[] }>('log', { level: 'info' })).entries;

  // One proxy per client. All are held until every client has connected, then released together.
  const proxies = await Promise.all(clients.map(() => FaultProxy.start({ targetPort: port })));
  t.teardown(() => Promise.all(proxies.map((p) => p.close())));
  for (const p of proxies) p.stall();
  // The first upload to leave any client is held (with everything after it on that connection).
  let firstUpload!: (i: number) => void;
  const uploading = new Promise<number>((r) => (firstUpload = r));
  let held = -1;
  const sentBefore: number[] = [];
  proxies.forEach((p, i) => {
    let up = 0;
    p.on('chunk', (dir, _index, bytes) => {
      if (dir !== 'up') return;
      if (held < 0 && up + bytes > UPLOAD_MARK) {
        held = i;
        sentBefore[i] = up;
        p.stall();
        firstUpload(i);
      }
      up += bytes;
    });
  });
  const connected = proxies.map((p) => new Promise<void>((r) => p.once('connection', () => r())));
  const joined = Promise.all(clients.map((c, i) => c.control('role.set', { role: 'client', server: `127.0.0.1:${proxies[i]!.port}`, user: 'admin', password: 'secret-pw' })));
  joined.catch(() => undefined); // awaited below; a refusal fails the test there
  await Promise.all(connected);
  for (const p of proxies) p.resume();

  const first = await uploading;
  t.true(sentBefore[first]! < 4000, `${sentBefore[first]} bytes before the upload`);
  const others = [0, 1, 2].filter((i) => i !== first);
  // The others are queued behind the held join (the server says so), or — were joins taken side by
  // side — have joined already. Either way, only then is the first upload let through.
  const live = (i: number) => clients[i]!.events.some((e) => e.event === 'sync-state' && e.state === 'live');
  await until(async () => {
    const log = await serverLog();
    return others.every((i) => live(i) || log.some((e) => e.code === 'JOIN_WAITING' && e.deviceId === ids[i]));
  }, 'the other clients are queued or joined');
  proxies[first]!.resume();
  await joined;

  const winner = NAMES[first]!;
  t.log(`${winner} connected first`);
  // The first client's data is the group's: on the server and on every client.
  t.deepEqual(await value(server, 'language'), LANGUAGES[first]);
  t.deepEqual(await value(server, 'address-list'), addressList(winner));
  for (const [i, c] of clients.entries()) {
    t.deepEqual(await value(c, 'language'), LANGUAGES[first], NAMES[i]);
    t.deepEqual(await value(c, 'address-list'), addressList(winner), NAMES[i]);
  }
  // Each of the others keeps its own data in its conflict log; the first lost nothing, nor did the server.
  for (const [i, c] of clients.entries()) {
    const { conflicts } = await c.control<{ conflicts: Conflict[] }>('conflicts.list');
    const kept = conflicts.map((x) => [x.log, x.entity, x.item, x.reason, x.value]).sort((x, y) => String(x[2]).localeCompare(String(y[2])));
    const expected = i === first ? [] : [['local', 'u:monday', 'address-list', 'join', addressList(NAMES[i]!)], ['local', 'u:monday', 'language', 'join', LANGUAGES[i]]];
    t.deepEqual(kept, expected, NAMES[i]);
  }
  t.deepEqual((await server.control<{ conflicts: Conflict[] }>('conflicts.list')).conflicts, [], 'nothing was lost on the server');

  // Each client's own user was uploaded by it; monday only by the first.
  const { users } = await server.control<{ users: { id: string }[] }>('users.list');
  t.deepEqual(users.map((u) => u.id).sort(), ['monday', 'ownA', 'ownB', 'ownC']);
  const log = await serverLog();
  const uploads = log.filter((e) => e.code === 'JOIN_UPLOAD').map((e) => [e.deviceId, e.message]);
  t.deepEqual(
    uploads.sort(),
    NAMES.map((name, i) => [ids[i], `${name} uploaded ${i === first ? 2 : 1} entities`]).sort(),
  );
  // Joins ended in the order they were queued: the first client's first; each other client waited for
  // the join queued before it, the first's at the head.
  const joinedOrder = log.filter((e) => e.code === 'JOINED').map((e) => e.deviceId);
  t.is(joinedOrder.length, 3);
  t.is(joinedOrder[0], ids[first]);
  const waiting = log.filter((e) => e.code === 'JOIN_WAITING');
  t.deepEqual(waiting.map((e) => e.deviceId), joinedOrder.slice(1));
  const nameOf = (id: string | undefined) => NAMES[ids.indexOf(id!)]!;
  t.deepEqual(
    waiting.map((e) => e.message),
    waiting.map((e, k) => `${nameOf(e.deviceId)} (${e.deviceId}) waits for the join of ${nameOf(joinedOrder[k])} (${joinedOrder[k]}): joins run one at a time`),
  );
  // The later clients were told to replace monday by their plan, not after losing a race of uploads.
  for (const [i, c] of clients.entries()) {
    const { entries } = await c.control<{ entries: LogEntry[] }>('log', { level: 'info' });
    t.false(entries.some((e) => e.code === 'JOIN_SKIPPED'), `${NAMES[i]}: ${JSON.stringify(entries.filter((e) => e.code === 'JOIN_SKIPPED'))}`);
  }
});

test('a client queued behind a long join keeps its session: the server answers its heartbeats while it waits', async (t) => {
  // B's heartbeats every second: silent for 3 of them, its session is gone to either end. (A keeps the
  // default 10 s: its connection is held whole for a few seconds.)
  const [{ server, port }, a, b] = await Promise.all([startServer(t), AgentProcess.spawn(t, { name: 'A' }), AgentProcess.spawn(t, { name: 'B', heartbeat: 1 })] as const);
  for (const [c, name] of [[a, 'A'], [b, 'B']] as const) await c.control('item.set', { kind: 'user', id: 'monday', item: 'address-list', value: addressList(name) });
  const bId = (await b.control<{ deviceId: string }>('status')).deviceId;
  const [pa, pb] = await Promise.all([FaultProxy.start({ targetPort: port }), FaultProxy.start({ targetPort: port })]);
  t.teardown(() => Promise.all([pa.close(), pb.close()]));
  // A's upload is held: its join stays under way, and B's waits behind it.
  let up = 0;
  const held = new Promise<void>((resolve) => {
    pa.on('chunk', (dir, _i, bytes) => {
      if (dir === 'up' && up <= UPLOAD_MARK && (up += bytes) > UPLOAD_MARK) {
        pa.stall();
        resolve();
      }
    });
  });
  const joinA = a.control('role.set', { role: 'client', server: `127.0.0.1:${pa.port}`, user: 'admin', password: 'secret-pw' });
  await held;
  const joinB = b.control('role.set', { role: 'client', server: `127.0.0.1:${pb.port}`, user: 'admin', password: 'secret-pw' });
  joinB.catch(() => undefined); // awaited below
  await until(async () => (await server.control<{ entries: LogEntry[] }>('log', { level: 'info' })).entries.some((e) => e.code === 'JOIN_WAITING' && e.deviceId === bId), 'B is queued');
  // Five pongs reach B while it waits (5 heartbeats: past the 3 that end a silent session).
  let pongs = 0;
  const fivePongs = new Promise<void>((resolve) => {
    pb.on('chunk', (dir) => {
      if (dir === 'down' && ++pongs === 5) resolve();
    });
  });
  // B's join cannot end while A's is held: ending now is losing its session.
  const ended = joinB.then(
    () => Promise.reject(new Error('B joined while A\'s join was held')),
    (err: Error) => Promise.reject(new Error(`B's session ended while it waited: ${err.message}`)),
  );
  await Promise.race([fivePongs, ended]);
  ended.catch(() => undefined); // B joins once A's join goes on: that is the outcome checked below
  pa.resume();
  await joinA;
  t.like(await joinB, { role: 'client', client: { state: 'live' } }, 'B joined in the same session');
  const { entries } = await server.control<{ entries: LogEntry[] }>('log', { level: 'warning' });
  t.deepEqual(entries.filter((e) => e.code === 'HEARTBEAT_MISSED'), []);
});
