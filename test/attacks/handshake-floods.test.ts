/**
 * Flooding the listener before authentication. The attacker opens hundreds of TCP connections that
 * never send a byte and WebSockets that take the challenge and never say hello, from one source
 * address (127.0.0.3) or from several, and opens each again as soon as the server cuts it; and, as an
 * admitted device, sends valid hellos and drops each connection at once, 200 times, to unbalance the
 * server's count of handshakes in progress. What must hold (SPEC §6): connections and handshakes are
 * capped per source and in total, so a client from another address joins and an admitted client
 * reconnects while the flood holds; no more handshakes than the limit are ever held open at once.
 * A real server process and real client processes; the attacker is this test process.
 */
import type { EventEmitter } from 'node:events';
import { connect } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { WebSocket } from 'ws';
import { createIdentity } from '../../agent/identity.js';
import type { MfpError } from '../../protocol/errors.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_PENDING_HANDSHAKES } from '../../protocol/limits.js';
import { AgentProcess, joinClient, startServer, type AgentEvent } from '../helpers/agents.js';
import { RawPeer } from '../helpers/raw-peer.js';

const state = (s: string) => (e: AgentEvent) => e.event === 'sync-state' && e.state === s;

/** Idle TCP sockets and silent WebSockets from given source addresses, each opened again when cut. */
class Flood {
  #stopped = false;
  readonly #open = new Set<{ destroy(): void }>();
  /** Connections the server cut (each was opened again). */
  cuts = 0;

  /** Opens every connection once and resolves when each has had its first outcome (up, or cut). */
  static async start(t: ExecutionContext, port: number, plan: { from: string; idle: number; silent: number }[]): Promise<Flood> {
    const flood = new Flood();
    t.teardown(() => flood.stop());
    const first: Promise<void>[] = [];
    for (const { from, idle: plain, silent: upgraded } of plan) {
      for (let i = 0; i < plain; i++) first.push(new Promise((resolve) => flood.#keep(() => idle(port, from), resolve)));
      for (let i = 0; i < upgraded; i++) first.push(new Promise((resolve) => flood.#keep(() => silent(port, from), resolve)));
    }
    await Promise.all(first);
    return flood;
  }

  stop(): void {
    this.#stopped = true;
    for (const s of this.#open) s.destroy();
    this.#open.clear();
  }

  /** Keeps one connection open: dialled again whenever it is cut. */
  #keep(dial: () => Dialled, settled: () => void = () => undefined): void {
    const { conn, up, destroy } = dial();
    const handle = { destroy };
    conn.on('error', () => undefined);
    conn.once(up, () => {
      this.#open.add(handle);
      settled();
    });
    conn.once('close', () => {
      settled();
      this.#open.delete(handle);
      if (this.#stopped) return;
      this.cuts++;
      setImmediate(() => this.#keep(dial));
    });
  }
}

/** A connection being opened: its emitter, the event that says it is up, and how to drop it. */
interface Dialled {
  conn: EventEmitter;
  up: string;
  destroy: () => void;
}

/** A TCP connection that never sends a byte. */
function idle(port: number, from: string): Dialled {
  const socket = connect({ host: '127.0.0.1', port, localAddress: from });
  return { conn: socket, up: 'connect', destroy: () => socket.destroy() };
}

/** A WebSocket that takes the challenge and never says hello. */
function silent(port: number, from: string): Dialled {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, localAddress: from });
  return { conn: ws, up: 'open', destroy: () => ws.terminate() };
}

/** Restarts an admitted client; resolves with the milliseconds from its ready line to its session being live. */
async function reconnect(client: AgentProcess): Promise<number> {
  await client.kill('SIGTERM');
  await client.start();
  const ready = performance.now();
  await client.waitFor(state('live'), HANDSHAKE_TIMEOUT_MS);
  return performance.now() - ready;
}

async function liveSessions(server: AgentProcess): Promise<string[]> {
  const { devices } = await server.ok<{ devices: { name: string; session: string | null }[] }>('devices', 'list');
  return devices.filter((d) => d.session === 'live').map((d) => d.name).sort();
}

test('256 idle sockets and silent WebSockets from one address: a new client joins and an admitted one reconnects', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  const [admitted, fresh] = await Promise.all([AgentProcess.spawn(t, { name: 'admitted' }), AgentProcess.spawn(t, { name: 'fresh' })]);
  await joinClient(admitted, port);
  const flood = await Flood.start(t, port, [{ from: '127.0.0.3', idle: 128, silent: 128 }]);
  t.log(`flood up: ${flood.cuts} attacker connections cut so far`);

  const began = performance.now();
  await joinClient(fresh, port);
  t.log(`a new client joined in ${(performance.now() - began).toFixed(0)} ms (shell start-up and password derivation included)`);
  const ms = await reconnect(admitted);
  t.log(`the admitted client was live within ${ms.toFixed(0)} ms of its ready line; ${flood.cuts} attacker connections cut meanwhile`);
  t.deepEqual(await liveSessions(server), ['admitted', 'fresh']);
  t.true(flood.cuts > 0, 'the flood was being cut all along');
});

test('a flood from eight addresses: a stranger from a ninth still gets its share, an admitted client reconnects', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  const admitted = await AgentProcess.spawn(t, { name: 'admitted' });
  await joinClient(admitted, port);
  const sources = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
  const flood = await Flood.start(t, port, sources.map((from) => ({ from, idle: 16, silent: 16 })));
  t.log(`flood up: ${flood.cuts} attacker connections cut so far`);

  // A stranger: an address no device has authenticated from. The fullest source's oldest handshake makes room.
  const stranger = await RawPeer.open({ port, localAddress: '127.0.0.20' });
  const welcome = await stranger.hello({ admission: { user: 'admin', password: 'secret-pw' } });
  t.is(welcome.resume, 'join');
  await stranger.close();
  const ms = await reconnect(admitted);
  t.log(`the admitted client was live within ${ms.toFixed(0)} ms of its ready line; ${flood.cuts} attacker connections cut meanwhile`);
  t.deepEqual(await liveSessions(server), ['admitted']);
});

test('200 hello-and-drop races by an admitted device leave the handshake count exact: 60 silent handshakes, no more than the limit held', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  // Admitted once with the password; then its identity alone opens sessions.
  const identity = createIdentity();
  const first = await RawPeer.open({ port, identity, localAddress: '127.0.0.2' });
  await first.hello({ admission: { user: 'admin', password: 'secret-pw' } });
  first.send({ type: 'join-offer', entities: [] });
  await first.receive('join-plan');
  await first.receive('snapshot');
  await first.close();
  // Five at a time (fewer than one address may hold in its handshake), each dropped right after its hello.
  for (let i = 0; i < 200; i += 5) {
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        const p = await RawPeer.open({ port, identity, localAddress: '127.0.0.2' });
        p.ws.send(p.buildHello().frame);
        p.terminate();
        await p.closed;
      }),
    );
  }

  // 60 strangers from 60 addresses, each taking the challenge and saying nothing.
  const strangers = 60;
  const overLimit = strangers - MAX_PENDING_HANDSHAKES;
  const silent: RawPeer[] = [];
  const fates = new Map<RawPeer, string>();
  const dropped = () => [...fates.values()].filter((f) => f === 'PEER_GONE').length;
  let allCut!: () => void;
  const cut = new Promise<void>((resolve) => (allCut = resolve));
  for (let i = 0; i < strangers; i++) {
    const p = await RawPeer.open({ port, localAddress: `127.0.0.${100 + i}`, timeoutMs: 3 * HANDSHAKE_TIMEOUT_MS });
    silent.push(p);
    void p.receive().then(
      (m) => fates.set(p, m.type),
      (e: MfpError) => {
        fates.set(p, e.code);
        if (dropped() >= overLimit) allCut();
      },
    );
  }
  // Cut at once: well before the handshake deadline would have closed them (the bound only makes a failure end).
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, HANDSHAKE_TIMEOUT_MS / 2)));
  await Promise.race([cut, late]);
  clearTimeout(timer);
  const held = silent.filter((p) => !fates.has(p)).length;
  t.log(`${held} silent handshakes held, ${dropped()} cut at once`);
  t.true(held <= MAX_PENDING_HANDSHAKES, `${held} silent handshakes held open against a limit of ${MAX_PENDING_HANDSHAKES}`);
  t.false([...fates.values()].includes('HANDSHAKE_TIMEOUT'));

  // A real client still gets in.
  const client = await AgentProcess.spawn(t, { name: 'client' });
  await joinClient(client, port);
  t.true((await liveSessions(server)).includes('client'));
  for (const p of silent) p.terminate();
});
