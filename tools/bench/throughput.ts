/**
 * Figure 7 — throughput under overload: a server and 9 clients, each machine an agent in a process of
 * its own (machines.ts). Every client writes its own users' items at a fixed rate without waiting for
 * any change (an open loop: the offered load does not slow down when the system does), and holds its
 * neighbour's users too, so every change is also fanned out to one other client. The load offered is
 * more than the server can store: flow control keeps at most a window of each client's changes in
 * flight (FLOW_WINDOW_CHANGES), and the excess waits in the clients' durable queues.
 *
 * The figures: the rate of changes the server stored durably (fsync'ed, group-committed) while the load
 * was offered; the propagation of the changes the server accepted, from the moment each left its writer
 * for the server (entered the window: the `changes-sent` event) to the holder's `item-changed`, every
 * stamp taken inside the machines with the host-wide clock; the clients' queues when the offered load
 * stops and how long they take to drain; and whether anything was lost: every change acknowledged as
 * applied, and every item's last value on the server and on its holder.
 */
import { availableParallelism } from 'node:os';
import { FLOW_WINDOW_CHANGES } from '../../protocol/limits.js';
import type { Ctx } from './context.js';
import type { Arrival } from './machine-child.js';
import { Machine } from './machines.js';
import { cpuProfArgs, summarizeChildren, type TimeWindow } from './profile.js';
import { userNames } from './records.js';
import { row } from './report.js';
import { fmtMs, hrNow, summarize } from './stats.js';

const CLIENTS = 9;
const USERS_PER_CLIENT = 6;
const ITEMS = ['accessibility', 'list-order'];
const CLIENT_NAMES = Array.from({ length: CLIENTS }, (_, i) => `tp-c${i}`);

interface Written { sent: number; failed: number; end: number; queued: number; cpuMs: number }
interface Drained { at: number; acked: { applied: number; duplicates: number; conflicts: number; rejected: number }; wire: [number, number][] }
interface Tracked { seq: number; arrivals: Arrival[]; commits: [number, number][]; queued: number; cpuMs: number }

/** Runs figure 7. */
export async function throughput(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  let load: TimeWindow | undefined;
  try {
    const server = await Machine.start(scope, ctx.tmp, { name: 'tp-s', execArgv: cpuProfArgs(ctx.profile, 'throughput server') });
    await server.serve();
    const clients = await Promise.all(CLIENT_NAMES.map((name) => Machine.start(scope, ctx.tmp, { name, execArgv: cpuProfArgs(ctx.profile, `throughput ${name}`) })));
    const owned = clients.map((_, i) => userNames(USERS_PER_CLIENT, `c${i}-`));
    const writerOf = new Map(owned.flatMap((users, i) => users.map((u) => [u, i] as const)));
    await server.call({ op: 'seed', users: owned.flat(), items: ITEMS }, 120_000);
    for (const c of clients) await c.call({ op: 'join', port: server.port }, 60_000);
    // Client i holds its own users and client i+1's: each change reaches the server and one other client.
    await Promise.all(clients.map((c, i) => c.call({ op: 'login', users: [...owned[i]!, ...owned[(i + 1) % CLIENTS]!], items: [ITEMS[0]!] }, 60_000)));

    const offered = ctx.sizes.offeredRate;
    const ms = ctx.sizes.loadSeconds * 1000;
    const { seq: seq0, cpuMs: serverCpu0 } = await server.call<Tracked>({ op: 'track', on: true });
    const clientCpu0 = (await Promise.all(clients.map((c) => c.call<Tracked>({ op: 'track', on: true })))).map((x) => x.cpuMs);
    const t0 = hrNow();
    const written = await Promise.all(clients.map((c, i) => c.call<Written>({ op: 'write', users: owned[i]!, items: ITEMS, rate: offered / CLIENTS, ms }, ms + 60_000)));
    // The offered load is over: the excess waits in the clients' queues until the server has taken it.
    const loadEnd = Math.max(...written.map((w) => w.end));
    load = { from: t0, to: loadEnd };
    const atEnd = await server.call<Tracked>({ op: 'track', on: true });
    const commits: [number, number][] = [...atEnd.commits];
    // CPU time of the ten processes (every thread: LevelDB's included) while the load was offered.
    const serverCores = (atEnd.cpuMs - serverCpu0) / (loadEnd - t0);
    const clientCores = written.reduce((n, w, i) => n + w.cpuMs - clientCpu0[i]!, 0) / (loadEnd - t0);
    const queuedAtEnd = written.reduce((n, w) => n + w.queued, 0);
    const drained = await Promise.all(clients.map((c) => c.call<Drained>({ op: 'drain' }, 120_000)));
    const drainMs = Math.max(0, Math.max(...drained.map((d) => d.at)) - loadEnd);
    const sent = written.reduce((n, w) => n + w.sent, 0);
    const failed = written.reduce((n, w) => n + w.failed, 0);

    // Collect the fan-out until every holder has the last value of every item it holds (a holder that
    // fell behind catches up from the server's log, which keeps only an item's last value).
    const last = owned.map((users, i) => lastValues(users, written[i]!.sent));
    const arrivals: Arrival[] = [];
    const deadline = hrNow() + 30_000;
    let seq1 = seq0;
    let holders: Record<string, Record<string, number | null>>[] = [];
    for (;;) {
      const s = await server.call<Tracked>({ op: 'track', on: true });
      commits.push(...s.commits);
      seq1 = s.seq;
      for (const c of clients) arrivals.push(...(await c.call<Tracked>({ op: 'track', on: true })).arrivals);
      holders = await Promise.all(clients.map((c, i) => c.call<Record<string, Record<string, number | null>>>({ op: 'values', users: owned[(i + 1) % CLIENTS]!, items: ITEMS })));
      const behind = holders.some((h, i) => missing(h, last[(i + 1) % CLIENTS]!) > 0);
      if (!behind || hrNow() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await server.call({ op: 'track', on: false });
    await Promise.all(clients.map((c) => c.call({ op: 'track', on: false })));

    // Nothing lost: each change acknowledged as applied, each item's last value on the server and on its holder.
    const onServer = await server.call<Record<string, Record<string, number | null>>>({ op: 'values', users: owned.flat(), items: ITEMS });
    const applied = drained.reduce((n, d) => n + d.acked.applied, 0);
    const notApplied = sent - applied;
    const serverMissing = last.reduce((n, l) => n + missing(onServer, l), 0);
    const holderMissing = holders.reduce((n, h, i) => n + missing(h, last[(i + 1) % CLIENTS]!), 0);
    const lost = Math.max(0, notApplied) + serverMissing + holderMissing;

    // Propagation of what the server accepted, from the wire (the window) and from the writer's setItem.
    const fromWire: number[] = [];
    const fromWrite: number[] = [];
    for (const [user, n, at, t] of arrivals) {
      const w = writerOf.get(user);
      const left = w === undefined ? Number.NaN : drained[w]!.wire[n]?.[0] ?? Number.NaN;
      if (Number.isFinite(left)) fromWire.push(at - left);
      fromWrite.push(at - t);
    }
    // The server's part: from the wire to the commit that made the change durable (by its version).
    const toCommit: number[] = [];
    for (const d of drained) {
      for (const [left, v] of d.wire) {
        const at = commitOf(commits, v);
        if (Number.isFinite(left) && at !== undefined) toCommit.push(at - left);
      }
    }
    const wire = summarize(fromWire);
    const write = summarize(fromWrite);
    const commit = summarize(toCommit);
    const stored = seq1 - seq0;
    const duringLoad = commits.filter(([at]) => at <= loadEnd).at(-1)?.[1] ?? seq0;
    const loadMs = loadEnd - t0;
    const rate = ((duringLoad - seq0) / loadMs) * 1000;
    const lastCommit = commits.at(-1)?.[0] ?? hrNow();
    const overall = (stored / (lastCommit - t0)) * 1000;

    const section = `throughput: ${CLIENTS} clients, ${offered} changes/s offered for ${ms / 1000} s, each fanned out to 1 other client; window ${FLOW_WINDOW_CHANGES} changes per session`;
    ctx.rows.push(row({ section, figure: 'changes stored durably while offered (server, fsync)', value: rate, unit: 'per-second', rateUnit: 'changes', baseline: { value: ctx.base.syncBatchRate, unit: 'per-second', rateUnit: 'batches', label: 'sequential fsync\'ed batches' }, target: { on: 'value', limit: 5000, atLeast: true, text: '≥ 5,000 changes/s' } }));
    ctx.rows.push(row({ section, figure: 'offered ÷ stored (overload)', value: offered / rate, unit: 'ratio', target: { on: 'value', limit: 2, atLeast: true, text: '≥ 2× (overload)' } }));
    ctx.rows.push(row({ section, figure: `propagation of accepted changes, wire → holder, p50 (${wire.n})`, value: wire.p50, unit: 'ms' }));
    ctx.rows.push(row({ section, figure: `propagation of accepted changes, wire → holder, p99 (${wire.n})`, value: wire.p99, unit: 'ms', target: { on: 'value', limit: 100, text: '≤ 100 ms' } }));
    ctx.rows.push(row({ section, figure: 'of which wire → the server\'s fsync\'ed commit, p99', value: commit.p99, unit: 'ms' }));
    ctx.rows.push(row({ section, figure: 'same from the writer\'s setItem (its queue\'s wait included), p99', value: write.p99, unit: 'ms' }));
    ctx.rows.push(row({ section, figure: 'changes in the clients\' queues when the load stopped', value: queuedAtEnd, unit: 'count' }));
    ctx.rows.push(row({ section, figure: 'queues drained, after the load stopped', value: drainMs, unit: 'ms' }));
    ctx.rows.push(row({ section, figure: 'changes lost (not applied, or last value missing on server or holder)', value: lost, unit: 'count', target: { on: 'value', limit: 0, text: '0' } }));
    ctx.rows.push(row({ section, figure: 'server store: fsync\'ed batches', value: commits.length, unit: 'count' }));
    const outcomes = drained.reduce((o, d) => ({ duplicates: o.duplicates + d.acked.duplicates, conflicts: o.conflicts + d.acked.conflicts, rejected: o.rejected + d.acked.rejected }), { duplicates: 0, conflicts: 0, rejected: 0 });
    ctx.notes.push(
      `throughput: ${sent} changes written (${failed} failed) by ${CLIENTS} client processes in ${fmtMs(loadMs)}, ${stored} stored by the server in ${commits.length} batches ` +
        `(${(stored / Math.max(1, commits.length)).toFixed(1)} changes per fsync), ${duringLoad - seq0} while the load was offered; ${(overall).toFixed(0)} changes/s from the first write to the last commit ${fmtMs(lastCommit - t0)} later. ` +
        `Acknowledged: ${applied} applied, ${outcomes.duplicates} duplicates, ${outcomes.conflicts} conflicts, ${outcomes.rejected} rejected; last values missing: ${serverMissing} on the server, ${holderMissing} on holders. ` +
        `${wire.n} fan-out arrivals timed from the wire (max ${fmtMs(wire.max)}); wire → commit p50 ${fmtMs(commit.p50)}; from setItem p50 ${fmtMs(write.p50)}, max ${fmtMs(write.max)}. ` +
        `CPU while the load was offered: the server ${serverCores.toFixed(2)} cores, the clients ${clientCores.toFixed(2)} together, of ${availableParallelism()}. ` +
        `Ten processes share ${ctx.base.syncBatchRate.toFixed(0)} sequential fsyncs/s of one disk and the host's CPUs; each client also fsyncs its own queue, which separate MFPs would do on their own storage.`,
    );
  } finally {
    await scope.run();
  }
  // The machines wrote their profiles as they exited (the whole run: setup, load and drain); the
  // summaries keep the samples taken while the load was offered.
  summarizeChildren(ctx.profile, 'throughput, the server process, while the load was offered', ['throughput server'], load);
  summarizeChildren(ctx.profile, `throughput, the ${CLIENTS} client processes together, while the load was offered`, CLIENT_NAMES.map((n) => `throughput ${n}`), load);
}

/** The change number each of a writer's items holds last, after `sent` changes (the child's write order). */
function lastValues(users: readonly string[], sent: number): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (let i = 0; i < sent; i++) {
    const u = users[i % users.length]!;
    (out[u] ??= {})[ITEMS[Math.floor(i / users.length) % ITEMS.length]!] = i;
  }
  return out;
}

/** When the commit that holds version `v` completed (commits: [when, seq after it], in order). */
function commitOf(commits: readonly [number, number][], v: number): number | undefined {
  let lo = 0;
  let hi = commits.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (commits[mid]![1] < v) lo = mid + 1;
    else hi = mid;
  }
  return commits[lo]?.[0];
}

/** Items whose last value `values` does not hold. */
function missing(values: Record<string, Record<string, number | null>>, last: Record<string, Record<string, number>>): number {
  let n = 0;
  for (const [u, items] of Object.entries(last)) for (const [item, want] of Object.entries(items)) if (values[u]?.[item] !== want) n++;
  return n;
}
