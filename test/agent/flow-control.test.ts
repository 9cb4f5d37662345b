/**
 * Flow control, watched from outside the agents. Client → server: a scripted server
 * (test/helpers/raw-server.ts) holds its acknowledgements and sees every frame the client sends; a
 * login's fetch, sent after every flush the writes before it caused, tells when the client has sent
 * all it will. Server → client: a raw peer that stops reading its socket is a stalled receiver, and a
 * fault proxy that stalls a writer's connection makes its queue grow; both catch up afterwards.
 */
import { Session } from 'node:inspector/promises';
import test, { type ExecutionContext } from 'ava';
import type { Agent } from '../../agent/agent.js';
import { FLOW_WINDOW_BYTES, FLOW_WINDOW_CHANGES, MAX_SEND_BUFFER_BYTES } from '../../protocol/limits.js';
import { AckStatus, SyncType, type AckEntry, type ChangeEntry } from '../../protocol/sync.js';
import { FaultProxy } from '../../tools/proxy.js';
import { admit, openAgent, openServer } from '../helpers/inprocess.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { RawServer, type RawSession } from '../helpers/raw-server.js';

const W = FLOW_WINDOW_CHANGES;

/** The changes a client sends before the fetch of a login made now: all it sends until an acknowledgement. */
async function sentBeforeLogin(s: RawSession, agent: Agent, user: string): Promise<ChangeEntry[]> {
  await agent.login(user);
  const got: ChangeEntry[] = [];
  for (;;) {
    const m = await s.next();
    if (m.type === SyncType.Changes) got.push(...m.list);
    if (m.type === SyncType.Fetch) return got;
  }
}

/** An acknowledgement applying changes, with versions counted up from `v`. */
function applied(list: readonly ChangeEntry[], v: { next: number }): { type: typeof SyncType.Ack; list: AckEntry[] } {
  return { type: SyncType.Ack, list: list.map(([c]) => [c, AckStatus.Applied, v.next++, null]) };
}

/** Resolves at the agent's next acknowledgement handled (with `empty`, the one that leaves its queue empty). */
function nextAck(agent: Agent, empty = false): Promise<void> {
  return new Promise((resolve) => {
    const on = (s: { queued: number }) => {
      if (empty && s.queued > 0) return;
      agent.off('changes-acked', on);
      resolve();
    };
    agent.on('changes-acked', on);
  });
}

/** An agent admitted as a client of a scripted server, and its session there. */
async function clientOfRawServer(t: ExecutionContext): Promise<{ a: Agent; s: RawSession }> {
  const srv = await RawServer.start({ password: 'pw' });
  t.teardown(() => srv.close());
  const a = await openAgent(t, 'a', { heartbeatSeconds: 3600 });
  const joined = srv.accept();
  await admit(a, srv.port);
  return { a, s: await joined };
}

test(`a client keeps at most ${W} changes unacknowledged; the rest waits in its queue and goes as acknowledgements free the window`, async (t) => {
  const { a, s } = await clientOfRawServer(t);
  const n = 3 * W;
  await Promise.all(Array.from({ length: n }, (_, i) => a.setItem('user', `u${i % 5}`, 'language', { display: 'en', n: i })));
  const first = await sentBeforeLogin(s, a, 'x1');
  t.is(first.length, W, 'the server was sent exactly one window');
  t.is(a.local.queueSize, n, 'everything waits in the durable queue until it is acknowledged');
  for (let i = 0; i < 5; i++) await a.setItem('user', 'u0', 'language', { display: 'en', n: n + i });
  t.deepEqual(await sentBeforeLogin(s, a, 'x2'), [], 'a full window sends nothing more, however much is written');

  const v = { next: 1 };
  const handled = nextAck(a);
  s.send(applied(first.slice(0, 5), v));
  await handled;
  const more = await sentBeforeLogin(s, a, 'x3');
  t.is(more.length, 5, 'five acknowledged, five more sent');

  // From now on every frame is acknowledged as it arrives: the client never has more than the window
  // out, and each change arrives once, in counter order.
  const drained = nextAck(a, true);
  const seen = [...first, ...more];
  s.send(applied(seen.slice(5), v));
  let acked = seen.length;
  while (seen.length < n + 5) {
    const m = await s.next(SyncType.Changes);
    seen.push(...m.list);
    t.true(seen.length - acked <= W, `${seen.length - acked} unacknowledged`);
    s.send(applied(m.list, v));
    acked += m.list.length;
  }
  await drained;
  const counters = seen.map(([c]) => c);
  t.deepEqual(counters, Array.from({ length: n + 5 }, (_, i) => counters[0]! + i), 'every change once, in order');
  t.is(a.local.queueSize, 0);
  const { items } = await a.getItems('user', 'u0', 'language');
  t.like(items.language, { value: { display: 'en', n: n + 4 }, version: v.next - 1 });
});

test('the window counts bytes too: large values go a few at a time, and one always goes however large', async (t) => {
  const { a, s } = await clientOfRawServer(t);
  const pad = 'x'.repeat(Math.floor(FLOW_WINDOW_BYTES / 2.5));
  for (let i = 0; i < 5; i++) await a.setItem('user', `big${i}`, 'language', { display: 'en', pad });
  const first = await sentBeforeLogin(s, a, 'x1');
  t.is(first.length, 2, `${first.length} changes of ${pad.length} bytes in flight within ${FLOW_WINDOW_BYTES}`);
  const v = { next: 1 };
  const handled = nextAck(a);
  s.send(applied(first.slice(0, 1), v));
  await handled;
  t.is((await sentBeforeLogin(s, a, 'x2')).length, 1);
});

test('a client that ignores the window is read from as the server catches up, never refused: every change is answered, in order', async (t) => {
  const server = await openServer(t, 'server', { heartbeatSeconds: 3600 });
  const peer = await RawPeer.open({ port: server.port });
  t.teardown(() => peer.terminate());
  await peer.hello({ admission: { user: 'admin', password: 'pw' } });
  peer.send({ type: SyncType.JoinOffer, entities: [] });
  await peer.receive(SyncType.Snapshot);
  // Eight windows at once, without waiting for any acknowledgement (as a client that raced would).
  const frames = 8;
  for (let f = 0; f < frames; f++) {
    peer.send({ type: SyncType.Changes, list: Array.from({ length: W }, (_, i): ChangeEntry => [f * W + i + 1, `u:r${i}`, 'language', 0, { display: 'en', n: f }]) });
  }
  const answered: number[] = [];
  while (answered.length < frames * W) {
    const ack = await peer.receive(SyncType.Ack);
    for (const [c, status] of ack.list) {
      t.is(status, AckStatus.Applied);
      answered.push(c);
    }
  }
  t.deepEqual(answered, Array.from({ length: frames * W }, (_, i) => i + 1));
  t.like((await server.getItems('user', 'r0', 'language')).items.language!.value, { n: frames - 1 });
});

/** Bytes this process holds in its heap and in buffers outside it, after a full collection. */
async function retained(): Promise<number> {
  const session = new Session();
  session.connect();
  try {
    await session.post('HeapProfiler.collectGarbage');
  } finally {
    session.disconnect();
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('a stalled receiver costs the server a bounded buffer and catches up from the store; a stalled writer\'s queue drains; nothing is lost', async (t) => {
  const server = await openServer(t, 'server', { heartbeatSeconds: 3600 });
  const proxy = await FaultProxy.start({ targetPort: server.port });
  t.teardown(() => proxy.close());
  const writer = await openAgent(t, 'writer', { heartbeatSeconds: 3600 });
  await admit(writer, proxy.port);
  await writer.setItem('user', 'big', 'language', { display: 'en', n: -1 });
  if (writer.local.queueSize > 0) await nextAck(writer, true);

  // The receiver holds the user, then stops reading its socket.
  const peer = await RawPeer.open({ port: server.port });
  t.teardown(() => peer.terminate());
  await peer.hello({ admission: { user: 'admin', password: 'pw' } });
  peer.send({ type: SyncType.JoinOffer, entities: [] });
  await peer.receive(SyncType.Snapshot);
  peer.send({ type: SyncType.Fetch, e: 'u:big', have: [] });
  await peer.receive(SyncType.Snapshot);
  peer.ws.pause();
  const before = await retained();

  // The writer's link stalls: its changes wait in its durable queue, one large change in flight.
  proxy.stall();
  const k = 100;
  const pad = 'y'.repeat(200 * 1024);
  for (let i = 0; i < k; i++) await writer.setItem('user', 'big', 'language', { display: 'en', n: i, pad });
  t.is(writer.local.queueSize, k);
  const drained = nextAck(writer, true);
  proxy.resume();
  await drained;
  t.is(server.group!.itemStates('u:big')!.get('language')!.v, server.group!.seq, 'the server took every change');
  const value = (await server.getItems('user', 'big', 'language')).items.language!.value as { n: number };
  t.is(value.n, k - 1);

  // 20 MB of deltas were due to the stalled receiver: the server keeps at most its send buffer of them
  // (1 MiB and a frame), beside the recent log it keeps in memory for every client (4 MiB; without the
  // bound this process grows by about as much as was due).
  const grown = await retained() - before;
  t.true(grown < 12 * MAX_SEND_BUFFER_BYTES, `the server's process grew by ${(grown / 1024 / 1024).toFixed(1)} MiB for ${(k * pad.length / 1024 / 1024).toFixed(0)} MiB of deltas due`);

  // Reading again, the receiver is sent what was buffered, then the rest from the store: the log keeps
  // an item's last value only, so far fewer deltas than changes, ending at the last value.
  peer.ws.resume();
  let deltas = 0;
  let last: unknown;
  for (;;) {
    const m = await peer.receive(SyncType.Deltas);
    for (const [, e, n, val] of m.list) {
      if (e !== 'u:big' || n !== 'language') continue;
      deltas++;
      last = val;
    }
    if (m.seq >= server.group!.seq) break;
  }
  t.like(last, { n: k - 1 });
  t.true(deltas < k, `${deltas} deltas for ${k} changes`);
  t.log(`server grew ${(grown / 1024 / 1024).toFixed(1)} MiB; ${deltas} deltas for ${k} changes`);
});
