/**
 * `npm run bench -- --peers`: the same workload on mfpsync and on a peer, Yjs + y-websocket +
 * y-leveldb, side by side, with mfpsync ÷ Yjs for each figure. The workload is the join figure's: 1,000
 * users of 14 realistic items each (records.ts), ~9 MB. For each system the server is a child process
 * and both clients, A and B, run in this process:
 * - mfpsync: `mfpsync run --durability fsync|os` as the server (children.ts); in-process agents as the
 *   clients (agents.ts), with the same durability.
 * - Yjs: tools/bench/peers/yjs-server.mjs (@y/websocket-server with y-leveldb in a temp folder) as the
 *   server; y-websocket providers as the clients (tools/bench/peers/yjs-client.mjs). How the users map
 *   onto a Y.Doc, and why, is in tools/bench/peers/yjs-model.mjs.
 *
 * One run, on a fresh server, in this order:
 * 1. join up: a client holding the 1,000 users the server lacks connects; done when the server holds
 *    them on disk (mfpsync: `setRole('client')` resolves, the upload committed; Yjs: the server child
 *    reports that y-leveldb has stored the update and its document holds all 1,000 users).
 * 2. restart → listening: the server is stopped and spawned again on its stored data; spawn → its
 *    ready line, printed once its port accepts connections (the same definition for both).
 * 3. join down, twice: a client A, the first after the restart (cold), then a client B while A is
 *    connected (the server has been running: the headline figure); each is done when it holds all
 *    1,000 users (mfpsync: a client holding a stale copy of the same users joins and the server's copy
 *    replaces it, the join figure's case — a client receives only the users it holds or logs in,
 *    SPEC §2; Yjs: a fresh document, done when it holds all 1,000 users with 14 items each, observed on
 *    its updates). A Yjs server reads a document from LevelDB at its first connection, so the cold
 *    join includes that read; mfpsync's server has loaded its index before its ready line.
 * 4. one change A → server → B: A changes one user's language, one change at a time, timed to B's
 *    event for it (mfpsync: item-changed from remote, the next change once A has its acknowledgement;
 *    Yjs: B's map observer, for a change not made locally).
 * Each figure is the median over the runs (3; 1 with --quick). The peers' packages live in
 * tools/bench/peers/ with their own lockfile, installed there on the first `--peers` run; mfpsync
 * never depends on them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { initDataDir } from '../../agent/config.js';
import { callControl } from '../../agent/control.js';
import type { Agent } from '../../agent/agent.js';
import type { Durability } from '../../storage/store.js';
import { HANG_MS, openAgent, PASSWORD } from './agents.js';
import { readyLine, spawnAgent, spawnUntilReady, type Child } from './children.js';
import type { Cleanup } from './cleanup.js';
import type { Ctx } from './context.js';
import { populateLocal, timedJoin } from './join.js';
import { changeSamples, LANGS } from './propagation.js';
import { userNames, userRecord, type UserRecord } from './records.js';
import type { PeerTable } from './report.js';
import { fmtBytes, fmtMs, median, now, summarize } from './stats.js';

/** The peers' folder, in the source tree (its .mjs files are not compiled). */
export const PEERS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../tools/bench/peers');
const INSTALLED = join(PEERS_DIR, 'node_modules', '.mfpsync-installed');

/** What the figure needs of the run. */
export type PeersCtx = Pick<Ctx, 'cleanup' | 'tmp' | 'quick' | 'sizes' | 'notes' | 'progress'>;

/** The variant the uploading client holds (and so the server, after join up); the stale copy's. */
const UP = 2;
const STALE = 1;
const ITEMS = Object.keys(userRecord('x')).length;
const COLUMNS = ['mfpsync fsync', 'mfpsync os', 'Yjs'] as const;
type Column = (typeof COLUMNS)[number];

/** Opaque handles of yjs-client.mjs. */
interface YDoc { readonly __ydoc: unique symbol }
interface YProvider { readonly __yprovider: unique symbol }

/** yjs-client.mjs, as the driver calls it. */
interface YjsClient {
  openDoc(update?: Uint8Array): YDoc;
  stateOf(doc: YDoc): Uint8Array;
  fill(doc: YDoc, users: [string, UserRecord][]): void;
  connect(doc: YDoc, port: number): YProvider;
  close(provider: YProvider, doc: YDoc): void;
  whenUsers(doc: YDoc, count: number, items: number, timeoutMs: number): Promise<void>;
  setItem(doc: YDoc, user: string, item: string, value: unknown): void;
  nextChange(doc: YDoc, user: string, item: string, timeoutMs: number): Promise<void>;
}

/** One run's figures for one system, ms. */
interface Round {
  p50: number;
  p99: number;
  /** Join down to a second client, while the first is connected (the server has been running). */
  joinDown: number;
  /** Join down to the first client after the restart. */
  joinCold: number;
  joinUp: number;
  restart: number;
  /** mfpsync: the joins' handshakes (connect, admission, welcome), part of the join figures. */
  handshakeDown?: number;
  handshakeUp?: number;
  /** Yjs: the server's read of the document from LevelDB at the join down's connection, part of it. */
  load?: number;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Installs the peers' packages from their lockfile unless the installed copy is of this lockfile. */
async function ensureInstalled(ctx: PeersCtx): Promise<void> {
  const lock = sha256(join(PEERS_DIR, 'package-lock.json'));
  if (existsSync(INSTALLED) && readFileSync(INSTALLED, 'utf8').trim() === lock) return;
  ctx.progress('peers: installing Yjs, y-websocket, y-leveldb into tools/bench/peers/node_modules (npm ci --prefix tools/bench/peers; once)');
  // npm's output goes to stderr: stdout is the report (and with --json one JSON document).
  const npm = spawn('npm', ['ci', '--prefix', PEERS_DIR, '--omit=optional', '--no-audit', '--no-fund'], { stdio: ['ignore', 2, 2] });
  ctx.cleanup.defer(`npm ci ${npm.pid}`, () => {
    if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((res, rej) => {
    npm.once('error', rej);
    npm.once('exit', (c) => res(c));
  });
  if (code !== 0) throw new Error(`npm ci --prefix ${PEERS_DIR} exited ${code}`);
  writeFileSync(INSTALLED, lock + '\n');
}

/** Waits for JSON lines of a child's stdout (the Yjs server's `persisted` reports). */
class Lines {
  #waiters: { pred: (o: Record<string, unknown>) => boolean; resolve: (o: Record<string, unknown>) => void }[] = [];

  readonly onLine = (line: string): void => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    for (const w of [...this.#waiters]) {
      if (!w.pred(o)) continue;
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve(o);
    }
  };

  /** The next line matching `pred`. Register before causing it. */
  next(pred: (o: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (o: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(o);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`yjs server: no ${what} within ${HANG_MS} ms`));
      }, HANG_MS);
      this.#waiters.push(w);
    });
  }
}

function spawnYjs(cleanup: Cleanup, dir: string, lines: Lines): Promise<Child> {
  return spawnUntilReady(cleanup, [join(PEERS_DIR, 'yjs-server.mjs'), '--dir', dir, '--items', String(ITEMS)], readyLine, lines.onLine);
}

/** A standalone agent holding the users, closed: each run's client starts from a copy of its folder. */
async function template(ctx: PeersCtx, name: string, names: readonly string[], variant: number): Promise<string> {
  const agent = await openAgent(ctx.cleanup, ctx.tmp, { name });
  await populateLocal(agent, names, variant);
  await agent.close();
  return agent.dataDir;
}

/** One run of mfpsync with one durability. */
async function mfpsyncRound(ctx: PeersCtx, d: Durability, names: readonly string[], tpl: { up: string; staleA: string; staleB: string }): Promise<Round> {
  const scope = ctx.cleanup.scope();
  try {
    const dir = join(scope.tempDir(ctx.tmp, `peer-m-${d}-`), 'd');
    initDataDir(dir, { name: `peer-s-${d}`, adminPassword: PASSWORD });
    const control = join(dir, 'control.sock');
    let server = await spawnAgent(scope, dir, { durability: d });
    const { port } = (await callControl(control, 'role.set', { role: 'server' })) as { port: number };

    const up = await openAgent(scope, ctx.tmp, { name: `peer-up-${d}`, durability: d, copyOf: tpl.up });
    const joinUp = await timedJoin(up, port);
    const held = ((await callControl(control, 'users.list', {})) as { users: unknown[] }).users.length;
    if (held !== names.length) throw new Error(`mfpsync ${d}: the server holds ${held} users after join up, not ${names.length}`);
    // Closed before the restart: the restarted server listens on another port.
    await up.close();

    await server.stop();
    server = await spawnAgent(scope, dir, { durability: d });
    if (server.ready.role !== 'server') throw new Error(`mfpsync ${d}: restarted as ${String(server.ready.role)}, not server`);
    const port2 = Number(server.ready.port);

    // A joins first after the restart (cold), B while A is connected (warm); B then holds every user.
    const joinStale = async (name: string, copyOf: string): Promise<{ agent: Agent; join: { total: number; handshake: number } }> => {
      const agent = await openAgent(scope, ctx.tmp, { name, durability: d, copyOf });
      const join = await timedJoin(agent, port2);
      const mine = (await agent.getItems('user', probe, 'address-list')).items['address-list']?.value;
      // Compared as values: the group stores objects with sorted keys.
      if (!isDeepStrictEqual(mine, userRecord(probe, UP)['address-list'])) throw new Error(`mfpsync ${d}: ${name}'s join down kept its stale copy`);
      return { agent, join };
    };
    const probe = names[names.length >> 1]!;
    const a = await joinStale(`peer-a-${d}`, tpl.staleA);
    const b = await joinStale(`peer-b-${d}`, tpl.staleB);
    const s = summarize(await changeSamples(a.agent, b.agent, probe, { samples: ctx.sizes.propagationSamples, warmup: ctx.sizes.propagationWarmup }));
    return {
      p50: s.p50, p99: s.p99, joinDown: b.join.total, joinCold: a.join.total, joinUp: joinUp.total, restart: server.readyMs,
      handshakeDown: b.join.handshake, handshakeUp: joinUp.handshake,
    };
  } finally {
    await scope.run();
  }
}

/** One run of Yjs; `upState` is the uploading client's document, as one update. */
async function yjsRound(ctx: PeersCtx, y: YjsClient, names: readonly string[], upState: Uint8Array): Promise<Round> {
  const scope = ctx.cleanup.scope();
  const open: [YProvider, YDoc][] = [];
  scope.defer('yjs providers', () => {
    for (const [p, d] of open) y.close(p, d);
  });
  const connect = (doc: YDoc, port: number) => {
    const p = y.connect(doc, port);
    open.push([p, doc]);
    return p;
  };
  try {
    const dir = scope.tempDir(ctx.tmp, 'peer-y-');
    const lines = new Lines();
    let server = await spawnYjs(scope, dir, lines);
    const port = Number(server.ready.port);

    const upDoc = y.openDoc(upState);
    const stored = lines.next((o) => o.event === 'persisted' && o.users === names.length, `${names.length} users persisted`);
    let t0 = now();
    const upProvider = connect(upDoc, port);
    await stored;
    const joinUp = now() - t0;
    y.close(upProvider, upDoc);

    await server.stop();
    server = await spawnYjs(scope, dir, lines);
    const port2 = Number(server.ready.port);

    // A connects first after the restart (cold: the server reads the document then), B while A is connected.
    const a = y.openDoc();
    const loaded = lines.next((o) => o.event === 'loaded', 'read of the document');
    t0 = now();
    connect(a, port2);
    await y.whenUsers(a, names.length, ITEMS, HANG_MS);
    const joinCold = now() - t0;
    const load = Number((await loaded).ms);
    const b = y.openDoc();
    t0 = now();
    connect(b, port2);
    await y.whenUsers(b, names.length, ITEMS, HANG_MS);
    const joinDown = now() - t0;
    const probe = names[names.length >> 1]!;
    const total: number[] = [];
    const { propagationSamples: samples, propagationWarmup: warmup } = ctx.sizes;
    // As changeSamples does for mfpsync, without an acknowledgement to wait for: Yjs has none.
    for (let i = 0; i < warmup + samples; i++) {
      const [display, keyboard] = LANGS[i % LANGS.length]!;
      const arrived = y.nextChange(b, probe, 'language', HANG_MS);
      const t = now();
      y.setItem(a, probe, 'language', { display, keyboard, n: i });
      await arrived;
      if (i >= warmup) total.push(now() - t);
    }
    const s = summarize(total);
    return { p50: s.p50, p99: s.p99, joinDown, joinCold, joinUp, restart: server.readyMs, load };
  } finally {
    await scope.run();
  }
}

/** Runs the comparison; returns the table of medians (the caller puts it in the report). */
export async function peers(ctx: PeersCtx): Promise<PeerTable> {
  await ensureInstalled(ctx);
  const y = (await import(pathToFileURL(join(PEERS_DIR, 'yjs-client.mjs')).href)) as YjsClient;
  const runs = ctx.quick ? 1 : 3;
  const names = userNames(ctx.sizes.users);
  ctx.progress(`peers: preparing clients holding ${names.length} users (mfpsync: three stores; Yjs: one document)`);
  const tpl = {
    up: await template(ctx, 'peer-tpl-up', names, UP),
    // Two machines, two identities: A and B are connected at once.
    staleA: await template(ctx, 'peer-tpl-a', names, STALE),
    staleB: await template(ctx, 'peer-tpl-b', names, STALE),
  };
  const upDoc = y.openDoc();
  y.fill(upDoc, names.map((u) => [u, userRecord(u, UP)]));
  const upState = y.stateOf(upDoc);

  const rounds: Record<Column, Round[]> = { 'mfpsync fsync': [], 'mfpsync os': [], Yjs: [] };
  for (let r = 0; r < runs; r++) {
    // Interleaved, so that a slow spell of the machine falls on every system alike.
    for (const d of ['fsync', 'os'] as const) {
      ctx.progress(`peers: run ${r + 1}/${runs}, mfpsync (${d})`);
      rounds[`mfpsync ${d}`].push(await mfpsyncRound(ctx, d, names, tpl));
    }
    ctx.progress(`peers: run ${r + 1}/${runs}, Yjs + y-websocket + y-leveldb`);
    rounds.Yjs.push(await yjsRound(ctx, y, names, upState));
  }

  const med = (c: Column, f: (r: Round) => number | undefined) => median(rounds[c].map((r) => f(r) ?? Number.NaN));
  const figures: { figure: string; of: (r: Round) => number | undefined }[] = [
    { figure: `one change A → server → B, p50 (${ctx.sizes.propagationSamples} changes)`, of: (r) => r.p50 },
    { figure: 'same, p99', of: (r) => r.p99 },
    { figure: `fresh client holds all ${names.length} users (join down)`, of: (r) => r.joinDown },
    { figure: '  same, the first client after a restart', of: (r) => r.joinCold },
    { figure: `server holds a client's ${names.length} users (join up)`, of: (r) => r.joinUp },
    { figure: `restart → listening, ${names.length} users stored`, of: (r) => r.restart },
  ];
  const table: PeerTable = {
    peer: 'Yjs + y-websocket + y-leveldb',
    runs,
    columns: [...COLUMNS],
    rows: figures.map(({ figure, of }) => {
      const values = Object.fromEntries(COLUMNS.map((c) => [c, med(c, of)]));
      const ratios = Object.fromEntries(COLUMNS.filter((c) => c !== 'Yjs').map((c) => [c, values[c]! / values.Yjs!]));
      return { figure, unit: 'ms' as const, values, ratios };
    }),
  };
  const fmtRuns = (c: Column, f: (r: Round) => number | undefined) => rounds[c].map((r) => fmtMs(f(r) ?? Number.NaN)).join(', ');
  ctx.notes.push(
    `peers: ${names.length} users × ${ITEMS} items; the Yjs document's whole state is ${fmtBytes(upState.length)} as one update. ` +
      `Versions: ${peerVersions()}. Runs, join down: ${COLUMNS.map((c) => `${c} ${fmtRuns(c, (r) => r.joinDown)}`).join('; ')}; ` +
      `join up: ${COLUMNS.map((c) => `${c} ${fmtRuns(c, (r) => r.joinUp)}`).join('; ')}.`,
    `peers: mfpsync's joins include its handshake (connect, admission with scrypt, welcome): ` +
      `${COLUMNS.filter((c) => c !== 'Yjs').map((c) => `${c} ${fmtMs(med(c, (r) => r.handshakeDown))} of the join down, ${fmtMs(med(c, (r) => r.handshakeUp))} of the join up`).join('; ')}. ` +
      'Yjs has no authentication and no encryption, and y-leveldb writes without fsync (as `os`); its server relays a change before storing it, ' +
      `and reads a document from LevelDB at its first connection, so its restart → listening loads nothing and its first join after the restart includes that read (${fmtMs(med('Yjs', (r) => r.load))}). ` +
      "mfpsync's join down replaces a stale copy of the same users (the join figure's case; a client holds only the users it holds or logs in) and keeps the replaced values in its conflict log; " +
      "the Yjs client starts empty. mfpsync's clients keep their store in LevelDB; the Yjs clients hold their document in memory.",
  );
  return table;
}

function peerVersions(): string {
  return ['yjs', 'y-websocket', '@y/websocket-server', 'y-leveldb'].map((p) => {
    try {
      return `${p} ${(JSON.parse(readFileSync(join(PEERS_DIR, 'node_modules', p, 'package.json'), 'utf8')) as { version: string }).version}`;
    } catch {
      return `${p} ?`;
    }
  }).join(', ');
}
