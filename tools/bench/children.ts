/**
 * Agents as child processes, the way a machine runs one: `mfpsync --data DIR --json run`. The time to
 * the ready line on stdout and the resident set size from /proc/PID/status are what figures 5 and 6
 * read. Every child is killed by the cleanup if it is still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { MFPSYNC } from '../fleet.js';
import type { Cleanup } from './cleanup.js';
import { now } from './stats.js';

/** A running child. */
export interface Child {
  proc: ChildProcess;
  /** The parsed ready line. */
  ready: Record<string, unknown>;
  /** Spawn → ready line, ms. */
  readyMs: number;
  stderr(): string;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s; resolves on exit. */
  stop(): Promise<void>;
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** Spawns `node ARGS…` and resolves at its first stdout line that `isReady` accepts; `onLine` sees every line. */
export async function spawnUntilReady(
  cleanup: Cleanup,
  args: string[],
  isReady: (line: string) => Record<string, unknown> | undefined,
  onLine?: (line: string) => void,
): Promise<Child> {
  const t0 = now();
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MFPSYNC_LOG_LEVEL: 'warn' } });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 64 * 1024) err += d;
  });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const done = exited(proc);
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(timer);
  };
  cleanup.defer(`child ${proc.pid}`, stop);
  const lines = createInterface({ input: proc.stdout! });
  if (onLine) lines.on('line', onLine);
  const ready = await new Promise<{ line: Record<string, unknown>; at: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child ${args.join(' ')} printed no ready line within 60 s: ${err}`)), 60_000);
    lines.on('line', (line) => {
      const at = now();
      const r = isReady(line);
      if (r) {
        clearTimeout(timer);
        resolve({ line: r, at });
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`child ${args.join(' ')} exited (${code ?? signal}) before ready: ${err}`));
    });
    proc.once('error', reject);
  });
  return { proc, ready: ready.line, readyMs: ready.at - t0, stderr: () => err, stop };
}

/** The parsed JSON line if it is a ready line (`{"event":"ready",…}`). */
export function readyLine(line: string): Record<string, unknown> | undefined {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    return o.event === 'ready' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `mfpsync run` on a data directory (port 0 on 127.0.0.1), the Remote UI off unless given a port. */
export function spawnAgent(cleanup: Cleanup, dataDir: string, o: { uiPort?: number; durability?: string } = {}): Promise<Child> {
  const args = [MFPSYNC, '--data', dataDir, '--json', 'run', '--host', '127.0.0.1', '--port', '0', '--ui-port', String(o.uiPort ?? 0)];
  if (o.durability !== undefined) args.push('--durability', o.durability);
  return spawnUntilReady(cleanup, args, readyLine);
}

/** A bare Node.js process that prints a line and idles: the physical floor of start time and memory. */
export function spawnBareNode(cleanup: Cleanup): Promise<Child> {
  return spawnUntilReady(cleanup, ['-e', "process.stdout.write('ready\\n'); setInterval(() => {}, 1 << 30);"], (line) => (line === 'ready' ? { event: 'ready' } : undefined));
}

/** Resident set size and its peak, in bytes, from /proc/PID/status. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * RSS once V8 has had the chance to give back memory: samples every `stepMs` for up to `windowMs` and
 * returns the lowest reading. V8's memory reducer runs several seconds after allocation stops, so a
 * reading taken at once can include garbage the process never needed to keep. Stops early once the
 * RSS has dropped by at least 1 MB and then held for a second.
 */
export async function settledRss(pid: number, o: { windowMs: number; stepMs?: number }): Promise<{ first: number; settled: number; afterMs: number }> {
  const step = o.stepMs ?? 250;
  const first = memoryOf(pid).rss;
  let low = first;
  let lowAt = 0;
  for (let t = step; t <= o.windowMs; t += step) {
    await new Promise((r) => setTimeout(r, step));
    const rss = memoryOf(pid).rss;
    if (rss < low) {
      low = rss;
      lowAt = t;
    }
    if (first - low >= 1024 * 1024 && t - lowAt >= 1000) break;
  }
  return { first, settled: low, afterMs: lowAt };
}
