/**
 * The bounded soak in CI: `tools/soak.js` as a child process with a fixed seed — every fault kind
 * injected, every end check passed — and the seeded schedule replaying identically.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { SoakReport } from '../tools/soak/report.js';
import { plannedKinds } from '../tools/soak/plan.js';

const SOAK = join(fileURLToPath(import.meta.url), '../../tools/soak.js');

function soak(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOAK, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the same seed plans the same faults; another seed, others', async (t) => {
  const [a, b, c] = await Promise.all([soak('--seed', '42', '--duration', '60s', '--plan-only'), soak('--seed', '42', '--duration', '60s', '--plan-only'), soak('--seed', '43', '--duration', '60s', '--plan-only')]);
  t.is(a.code, 0);
  t.is(a.stdout, b.stdout);
  t.not(a.stdout, c.stdout);
  const { plan, diskFull } = JSON.parse(a.stdout) as { plan: { kind: string }[]; diskFull: { planned: boolean; reason?: string } };
  if (!diskFull.planned) t.log(`no disk-full fault: ${diskFull.reason}`);
  t.deepEqual([...new Set(plan.map((f) => f.kind))].sort(), [...plannedKinds({ diskFull: diskFull.planned })].sort());
});

test('bounded soak: 9 clients, every kind of fault, every check passes', async (t) => {
  t.timeout(300_000);
  const r = await soak('--seed', '11', '--duration', '20s', '--json');
  const report = JSON.parse(r.stdout) as SoakReport;
  t.log(`${(report.wallMs / 1000).toFixed(1)} s; ${report.changes.written} changes, ${report.changes.conflicts} conflicts, converged ${report.convergeMs} ms after activity stopped`);
  for (const c of report.checks) t.true(c.pass, `${c.name}: ${c.detail}`);
  t.is(r.code, 0, r.stderr.slice(-2000));
  t.true(report.pass);
  for (const kind of plannedKinds({ diskFull: report.diskFull.planned })) t.true((report.faults.injected[kind] ?? 0) >= 1, `${kind} injected`);
  if (!report.diskFull.planned) t.log(`no disk-full fault: ${report.diskFull.reason}`);
  for (const d of report.diskFull.episodes) {
    t.true(d.refused, `the full disk at ${d.at} ms refused a write (STORE_WRITE_FAILED)`);
    t.true(d.ackedAfterFree > 0, `changes were acknowledged after the disk at ${d.at} ms was freed, before the restart`);
  }
  t.true(report.changes.acked > 100, 'the activity was acknowledged');
  t.true(report.changes.conflicts > 0, 'shared users made conflicts');
  t.true(report.rss.length > 0, 'some processes ran through and were measured');
});
