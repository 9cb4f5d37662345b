/**
 * The benchmark's command line: help, and a coded USAGE error (exit 2) for what it does not know,
 * without measuring anything. (The figures themselves are never timed in tests: see `npm run bench`.)
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const BENCH = fileURLToPath(new URL('../../tools/bench.js', import.meta.url));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BENCH, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('--help prints the usage with every figure name, exit 0', async (t) => {
  const r = await run(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^usage: npm run bench -- \[--quick\] \[--json\].*propagation,.*join-up,memory,crypto/);
});

test('an unknown option is a USAGE error, exit 2, with the usage', async (t) => {
  const r = await run(['--bogus']);
  t.is(r.code, 2);
  t.regex(r.stderr, /^bench: USAGE: Unknown option '--bogus'\nusage: /);
  t.is(r.stdout, '');
});

test('an unknown figure is refused before anything is measured, exit 2', async (t) => {
  const r = await run(['--only', 'propagation,warp']);
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown figure\(s\) warp/);
  t.is(r.stdout, '');
});
