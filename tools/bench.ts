/**
 * `npm run bench`: mfpsync's performance figures, each divided by a physical baseline measured in the
 * same run (a raw WebSocket round trip, a raw fsync'ed LevelDB write, a raw transfer of the same bytes,
 * a bare Node.js process), so that the ratios survive a noisy machine. Prints a table — figure, value,
 * baseline, ratio, target, PASS/MISS — or with `--json` one JSON document. PASS/MISS is informational:
 * this is a report, never a timed assertion.
 *
 *   node dist/tools/bench.js [--quick] [--json] [--dir PARENT] [--only NAME,…] [--profile DIR] [--peers]
 *
 * --peers runs the same workload on mfpsync and on Yjs + y-websocket + y-leveldb and reports
 * mfpsync ÷ Yjs for each figure (tools/bench/peers.ts); alone it runs only that comparison, with
 * --only also the figures named.
 * --profile DIR writes a CPU profile of each timed figure into DIR and adds a summary of each to the
 * report: which parts of the program the time went to (tools/bench/profile.ts).
 * Figures (names for --only): propagation, propagation-os, wire, throughput, join, join-up, memory, crypto.
 * Every temp folder, agent and child process is released at the end, on error and on SIGINT/SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { keepYoungGenerationSmall } from '../agent/heap.js';
import { levelPut, levelSyncBatchRate, wsRoundTrip } from './bench/baselines.js';
import { Cleanup } from './bench/cleanup.js';
import type { Baselines, Ctx, Sizes } from './bench/context.js';
import { joinDown, joinUp } from './bench/join.js';
import { memoryAndStart } from './bench/memory.js';
import { crypto } from './bench/crypto.js';
import { propagation } from './bench/propagation.js';
import { throughput } from './bench/throughput.js';
import { peers } from './bench/peers.js';
import { formatTable, type Report } from './bench/report.js';
import { fmtMs, now } from './bench/stats.js';
import { wire } from './bench/wire.js';

const FULL: Sizes = { rttSamples: 2000, putSamples: 500, propagationSamples: 1000, propagationWarmup: 50, users: 1000, startRuns: 5, offeredRate: 5000, loadSeconds: 6, memoryClients: 9 };
const QUICK: Sizes = { rttSamples: 500, putSamples: 100, propagationSamples: 200, propagationWarmup: 20, users: 1000, startRuns: 2, offeredRate: 5000, loadSeconds: 3, memoryClients: 1 };

const FIGURES: Record<string, (ctx: Ctx) => Promise<void>> = {
  propagation: (ctx) => propagation(ctx, 'fsync'),
  'propagation-os': (ctx) => propagation(ctx, 'os'),
  wire,
  throughput,
  join: joinDown,
  'join-up': joinUp,
  memory: memoryAndStart,
  crypto,
};

function filesystemOf(dir: string): string {
  try {
    return execFileSync('df', ['--output=fstype', dir], { encoding: 'utf8' }).trim().split('\n').pop() ?? '?';
  } catch {
    return '?';
  }
}

async function measureBaselines(ctx: Omit<Ctx, 'base'>): Promise<Baselines> {
  const { sizes, cleanup, tmp } = ctx;
  ctx.progress('baselines: ws round trip');
  const rtt = await wsRoundTrip(cleanup, { bytes: 200, samples: sizes.rttSamples, warmup: 200 });
  ctx.progress('baselines: LevelDB puts');
  const fsyncPut = await levelPut(cleanup, tmp, { bytes: 200, samples: sizes.putSamples, warmup: 20, sync: true });
  const osPut = await levelPut(cleanup, tmp, { bytes: 200, samples: sizes.putSamples, warmup: 20, sync: false });
  const rate = await levelSyncBatchRate(cleanup, tmp, { batches: sizes.putSamples, valueBytes: 200 });
  const line = (s: { p50: number; p99: number; n: number }) => `p50 ${fmtMs(s.p50)}   p99 ${fmtMs(s.p99)}   (n=${s.n})`;
  ctx.baselineLines.push(
    { name: 'ws round trip, 200 B binary, loopback', text: line(rtt), values: { ...rtt } },
    { name: 'LevelDB put 200 B, fsync', text: line(fsyncPut), values: { ...fsyncPut } },
    { name: 'LevelDB put 200 B, no fsync', text: line(osPut), values: { ...osPut } },
    { name: 'LevelDB change-shaped batch, fsync', text: `${rate.perSecond.toFixed(0)} batches/s sequential; ${line(rate.summary)}`, values: { perSecond: rate.perSecond, ...rate.summary } },
  );
  return { rtt, fsyncPut, osPut, syncBatchRate: rate.perSecond };
}

const USAGE = `usage: npm run bench -- [--quick] [--json] [--dir PARENT] [--only ${Object.keys(FIGURES).join(',')}] [--profile DIR] [--peers]\n`;

async function main(): Promise<number> {
  // The in-process figures run agents in this process: it gets the heap settings of an agent's process.
  keepYoungGenerationSmall();
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        dir: { type: 'string' },
        only: { type: 'string' },
        profile: { type: 'string' },
        peers: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`bench: USAGE: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // --peers alone is the comparison alone; with --only, the figures named too.
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : values.peers ? [] : Object.keys(FIGURES);
  const unknown = only.filter((f) => !Object.hasOwn(FIGURES, f));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown figure(s) ${unknown.join(', ')}; one of ${Object.keys(FIGURES).join(', ')}\n`);
    return 2;
  }
  const started = now();
  const cleanup = new Cleanup();
  const parent = values.dir ?? tmpdir();
  let aborted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // Interrupted: release everything and exit without a report (its figures would be half-measured).
    aborted = true;
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const report: Report = {
    meta: {
      mode: values.quick ? 'quick' : 'full',
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      tempDir: parent,
      tempFs: filesystemOf(parent),
      startedAt: new Date().toISOString(),
      figures: values.peers ? [...only, 'peers'] : only,
    },
    baselines: [],
    rows: [],
    notes: [],
    errors: [],
  };
  const profile = values.profile === undefined ? undefined : { dir: resolve(values.profile), summaries: [] };
  if (profile) {
    mkdirSync(profile.dir, { recursive: true });
    report.profiles = profile.summaries;
  }
  try {
    const tmp = cleanup.tempDir(parent, 'mfpbench-');
    const partial = {
      cleanup,
      tmp,
      quick: values.quick === true,
      sizes: values.quick ? QUICK : FULL,
      rows: report.rows,
      notes: report.notes,
      baselineLines: report.baselines,
      profile,
      progress: (m: string) => process.stderr.write(`bench [${fmtMs(now() - started)}] ${m}\n`),
    };
    // The peers' comparison needs none of the physical baselines: measured only for the figures.
    if (only.length > 0) {
      const ctx: Ctx = { ...partial, base: await measureBaselines(partial) };
      for (const name of only) {
        if (aborted) break;
        ctx.progress(`figure ${name}`);
        try {
          await FIGURES[name]!(ctx);
        } catch (err) {
          // One broken figure must not hide the others; the error is part of the report.
          report.errors.push(`${name}: ${(err as Error).stack ?? String(err)}`);
        }
      }
    }
    if (values.peers && !aborted) {
      partial.progress('figure peers');
      try {
        report.peers = await peers(partial);
      } catch (err) {
        report.errors.push(`peers: ${(err as Error).stack ?? String(err)}`);
      }
    }
  } catch (err) {
    report.errors.push(`setup: ${(err as Error).stack ?? String(err)}`);
  } finally {
    for (const e of await cleanup.run()) report.errors.push(e.message);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (aborted) return 130;
  report.meta.durationMs = now() - started;
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatTable(report) + '\n');
  return report.errors.length > 0 ? 1 : 0;
}

process.exitCode = await main();
