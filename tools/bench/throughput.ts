/**
 * Figure 7 — throughput under load: a server and 9 clients, each machine an agent in a process of its
 * own (machines.ts). Every client writes its own users' items at a fixed rate without waiting for any
 * change (an open loop: the offered load does not slow down when the system does), and holds its
 * neighbour's users too, so every change is also fanned out to one other client. The figures are the
 * rate of changes the server stored durably (fsync'ed, group-committed) and the propagation latency
 * writer → server → holder at that load, each change stamped by its writer with the host-wide clock.
 */
import type { Ctx } from './context.js';
import { Machine } from './machines.js';
import { cpuProfArgs, summarizeChildren } from './profile.js';
import { userNames } from './records.js';
import { row } from './report.js';
import { fmtMs, hrNow, summarize } from './stats.js';

const CLIENTS = 9;
const USERS_PER_CLIENT = 6;
const ITEMS = ['accessibility', 'list-order'];
const CLIENT_NAMES = Array.from({ length: CLIENTS }, (_, i) => `tp-c${i}`);

/** Runs figure 7. */
export async function throughput(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  try {
    const server = await Machine.start(scope, ctx.tmp, { name: 'tp-s', execArgv: cpuProfArgs(ctx.profile, 'throughput server') });
    await server.serve();
    const clients = await Promise.all(CLIENT_NAMES.map((name) => Machine.start(scope, ctx.tmp, { name, execArgv: cpuProfArgs(ctx.profile, `throughput ${name}`) })));
    const owned = clients.map((_, i) => userNames(USERS_PER_CLIENT, `c${i}-`));
    await server.call({ op: 'seed', users: owned.flat(), items: ITEMS }, 120_000);
    for (const c of clients) await c.call({ op: 'join', port: server.port }, 60_000);
    // Client i holds its own users and client i+1's: each change reaches the server and one other client.
    await Promise.all(clients.map((c, i) => c.call({ op: 'login', users: [...owned[i]!, ...owned[(i + 1) % CLIENTS]!], items: [ITEMS[0]!] }, 60_000)));

    const offered = ctx.sizes.offeredRate;
    const ms = ctx.sizes.loadSeconds * 1000;
    const { seq: seq0 } = await server.call<{ seq: number }>({ op: 'track', on: true });
    await Promise.all(clients.map((c) => c.call({ op: 'track', on: true })));
    const t0 = hrNow();
    const written = await Promise.all(clients.map((c, i) => c.call<{ sent: number; failed: number }>({ op: 'write', users: owned[i]!, items: ITEMS, rate: offered / CLIENTS, ms }, ms + 60_000)));
    // Every writer's queue is drained: the server has acknowledged everything. Collect the fan-out.
    const sent = written.reduce((n, w) => n + w.sent, 0);
    const failed = written.reduce((n, w) => n + w.failed, 0);
    const latencies: number[] = [];
    const commits: number[] = [];
    const deadline = hrNow() + 30_000;
    let seq1 = seq0;
    while (hrNow() < deadline) {
      const s = await server.call<{ seq: number; commits: number[] }>({ op: 'track', on: true });
      commits.push(...s.commits);
      seq1 = s.seq;
      for (const c of clients) latencies.push(...(await c.call<{ latencies: number[] }>({ op: 'track', on: true })).latencies);
      if (latencies.length >= sent) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stored = seq1 - seq0;
    const lastCommit = commits.length > 0 ? commits[commits.length - 1]! : hrNow();
    const rate = (stored / (lastCommit - t0)) * 1000;
    const lat = summarize(latencies);
    const section = `throughput: ${CLIENTS} clients, ${offered} changes/s offered for ${ms / 1000} s, each fanned out to 1 other client`;
    ctx.rows.push(row({ section, figure: 'changes stored durably (server, fsync)', value: rate, unit: 'per-second', rateUnit: 'changes', baseline: { value: ctx.base.syncBatchRate, unit: 'per-second', rateUnit: 'batches', label: 'sequential fsync\'ed batches' }, target: { on: 'value', limit: 5000, atLeast: true, text: '≥ 5,000 changes/s' } }));
    ctx.rows.push(row({ section, figure: `propagation writer → server → holder, p50 (${lat.n})`, value: lat.p50, unit: 'ms' }));
    ctx.rows.push(row({ section, figure: `propagation writer → server → holder, p99 (${lat.n})`, value: lat.p99, unit: 'ms', target: { on: 'value', limit: 20, text: '< 20 ms' } }));
    ctx.rows.push(row({ section, figure: 'server store: fsync\'ed batches', value: commits.length, unit: 'count' }));
    ctx.notes.push(
      `throughput: ${sent} changes written (${failed} failed) by ${CLIENTS} client processes, ${stored} stored by the server in ${commits.length} batches ` +
        `(${(stored / Math.max(1, commits.length)).toFixed(1)} changes per fsync), last commit ${fmtMs(lastCommit - t0)} after the first write; ` +
        `${lat.n} of ${sent} fan-out arrivals timed, max ${fmtMs(lat.max)}. Ten processes share ${ctx.base.syncBatchRate.toFixed(0)} sequential fsyncs/s of one disk and the host's CPUs; ` +
        'each client also fsyncs its own queue, which separate MFPs would do on their own storage.',
    );
  } finally {
    await scope.run();
  }
  // The machines wrote their profiles as they exited (the whole run: setup, load and drain).
  summarizeChildren(ctx.profile, 'throughput, the server process (whole run)', ['throughput server']);
  summarizeChildren(ctx.profile, `throughput, the ${CLIENTS} client processes together (whole run)`, CLIENT_NAMES.map((n) => `throughput ${n}`));
}
