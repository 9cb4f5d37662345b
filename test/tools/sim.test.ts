/**
 * `mfpsync sim` as a user runs it: a child process on real sockets and LevelDB folders, its `--json`
 * snapshots read line by line (awaited, never slept on), its exit code, and its temporary data gone.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import test from 'ava';
import type { SimSnapshot, SimSummary } from '../../tools/sim/snapshot.js';
import { MFPSYNC } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';

type Line = SimSnapshot | SimSummary | { error: { code: string; message: string } };

/** Runs the simulator; `onLine` sees each JSON line as it comes (and may signal the child). */
function sim(args: string[], onLine: (line: Line, child: ReturnType<typeof spawn>) => void = () => undefined) {
  const child = spawn(process.execPath, [MFPSYNC, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Line[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    onLine(line, child);
  });
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: Line[]; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, lines, stderr }));
  });
}

const snapshots = (lines: Line[]) => lines.filter((l): l is SimSnapshot => 'type' in l && l.type === 'snapshot');
const summaryOf = (lines: Line[]) => lines.find((l): l is SimSummary => 'type' in l && l.type === 'summary');

test('three machines join, edits propagate, lag ends at 0, exit 0, temp data removed', async (t) => {
  const parent = tempDir(t);
  const { code, lines, stderr } = await sim(['sim', '--devices', '3', '--users', '30', '--rate', '20', '--duration', '4', '--seed', '42', '--json', '--dir', parent]);
  t.is(code, 0, stderr);
  const snaps = snapshots(lines);
  const first = snaps[0]!;
  t.deepEqual(first.machines.map((m) => [m.name, m.role]), [['server', 'server'], ['client-1', 'client'], ['client-2', 'client']]);
  // Each client's join progress reached its total (the users of its stale copy the server replaced).
  for (const name of ['client-1', 'client-2']) {
    const progress = snaps.map((s) => s.machines.find((m) => m.name === name)!.progress).filter((p) => p !== null && p.phase !== 'loading');
    const last = progress[progress.length - 1]!;
    t.is(last.phase, 'done', name);
    t.true(last.total > 0 && last.done === last.total, `${name}: ${last.done}/${last.total}`);
    t.true(last.bytes > 0, name);
  }
  t.true(snaps.some((s) => s.phase === 'running' && s.machines.slice(1).every((m) => m.state === 'synchronized')));
  const end = snaps[snaps.length - 1]!;
  t.is(end.phase, 'done');
  t.true(end.totals.edits > 0);
  t.true(end.totals.propagated > 0, 'edits reached other clients');
  t.true(end.totals.p50Ms !== null && end.totals.p50Ms > 0);
  t.deepEqual(end.machines.slice(1).map((m) => [m.state, m.lag]), [['synchronized', 0], ['synchronized', 0]]);
  t.is(end.machines[0]!.users, 30);
  const summary = summaryOf(lines)!;
  t.is(lines[lines.length - 1], summary, 'the summary is the last line');
  t.like(summary, { stoppedBy: 'duration', settled: true, maxLag: 0, errors: [], dirRemoved: true });
  t.true(summary.dir.startsWith(parent));
  t.false(existsSync(summary.dir));
  t.deepEqual(readdirSync(parent), []);
});

test('SIGINT once synchronized: clean stop, summary, exit 0, temp data removed', async (t) => {
  const parent = tempDir(t);
  let signalled = false;
  const { code, signal, lines, stderr } = await sim(['sim', '--devices', '3', '--users', '30', '--json', '--dir', parent], (line, child) => {
    if (!signalled && 'type' in line && line.type === 'snapshot' && line.machines.slice(1).every((m) => m.state === 'synchronized')) {
      signalled = true;
      child.kill('SIGINT');
    }
  });
  t.true(signalled);
  t.is(signal, null);
  t.is(code, 0, stderr);
  const summary = summaryOf(lines)!;
  t.like(summary, { type: 'summary', stoppedBy: 'SIGINT', errors: [], dirRemoved: true });
  t.false(existsSync(summary.dir));
  t.deepEqual(readdirSync(parent), []);
});

test('--devices 11 is a coded INVALID_ARGUMENT (exit 2), and nothing is created', async (t) => {
  const parent = tempDir(t);
  const { code, lines, stderr } = await sim(['--json', 'sim', '--devices', '11', '--dir', parent]);
  t.is(code, 2);
  t.is((lines[0] as { error: { code: string } }).error.code, 'INVALID_ARGUMENT');
  t.regex(stderr, /^error INVALID_ARGUMENT: --devices must be an integer in \[2, 10\]/);
  t.deepEqual(readdirSync(parent), []);
});

test('an unknown option is a USAGE error (exit 2)', async (t) => {
  const { code, stderr } = await sim(['sim', '--machines', '3']);
  t.is(code, 2);
  t.regex(stderr, /^error USAGE: unknown option '--machines'/);
});
