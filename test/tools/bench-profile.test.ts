/**
 * `npm run bench -- --profile DIR`: the summary of a CPU profile (parts of the program, hottest
 * functions) from a profile built by hand, and one real profiled figure end to end. Nothing is timed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { partOf, summarizeProfiles, type CpuProfile } from '../../tools/bench/profile.js';

const BENCH = fileURLToPath(new URL('../../tools/bench.js', import.meta.url));

test('partOf names idle, GC, each dependency, Node internals and mfpsync\'s own layers', (t) => {
  t.is(partOf('', '(idle)'), 'idle (waiting for I/O)');
  t.is(partOf('', '(garbage collector)'), 'garbage collection');
  t.is(partOf('file:///x/node_modules/tweetnacl/nacl-fast.js', 'core_salsa20'), 'tweetnacl (encryption)');
  t.is(partOf('file:///x/node_modules/msgpackr/pack.js', 'pack'), 'msgpackr (MessagePack)');
  t.is(partOf('file:///x/node_modules/classic-level/index.js', '_batch'), 'level (LevelDB binding)');
  t.is(partOf('file:///x/node_modules/@scope/thing/a.js', 'f'), '@scope/thing');
  t.is(partOf('node:internal/streams/writable', 'write'), 'Node.js internals');
  t.is(partOf('file:///repo/dist/storage/store.js', 'commit'), 'mfpsync storage');
  t.is(partOf('file:///repo/dist/tools/bench/join.js', 'timedJoin'), 'mfpsync tools (benchmark harness)');
  t.is(partOf('', 'hash'), 'native functions (hashing, syscalls, builtins)');
});

test('summarizeProfiles adds self time per part and per function, over several profiles', (t) => {
  const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });
  // Each sample owns the time until the next one: 1 ms steps, the last sample owns nothing.
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(idle)', '') },
      { id: 2, callFrame: frame('(garbage collector)', '') },
      { id: 3, callFrame: frame('seal', 'file:///x/node_modules/tweetnacl/nacl-fast.js', 9) },
      { id: 4, callFrame: frame('commit', 'file:///repo/dist/storage/store.js', 41) },
    ],
    startTime: 0,
    endTime: 10_000,
    samples: [3, 3, 3, 4, 1, 1, 1, 1, 2, 4],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  };
  const s = summarizeProfiles('two runs', [{ file: 'a.cpuprofile', profile }, { file: 'b.cpuprofile', profile }]);
  t.deepEqual(s.files, ['a.cpuprofile', 'b.cpuprofile']);
  t.is(s.sampledMs, 18);
  t.deepEqual(s.parts.map((p) => [p.part, p.ms]), [
    ['idle (waiting for I/O)', 8],
    ['tweetnacl (encryption)', 6],
    ['mfpsync storage', 2],
    ['garbage collection', 2],
  ]);
  t.is(s.parts[0]!.share, 8 / 18);
  // Idle and GC are parts, never "hottest functions".
  t.deepEqual(s.top.map((f) => [f.fn, f.ms]), [['seal (nacl-fast.js:10)', 6], ['commit (store.js:42)', 2]]);
});

test('--profile DIR profiles a figure: the .cpuprofile is written and the report summarises it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mfpprof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [BENCH, '--quick', '--json', '--only', 'propagation-os', '--profile', dir], { timeout: 50_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  const report = JSON.parse(out) as { profiles: { label: string; files: string[]; sampledMs: number; parts: { part: string; share: number }[] }[] };
  t.is(report.profiles.length, 1);
  const [p] = report.profiles;
  t.regex(p!.label, /^propagation os /);
  t.true(p!.sampledMs > 0);
  t.deepEqual(p!.files, [join(dir, 'propagation-os.cpuprofile')]);
  const written = JSON.parse(readFileSync(p!.files[0]!, 'utf8')) as CpuProfile;
  t.true(written.nodes.length > 0 && written.samples.length > 0);
  // mfpsync's own code ran while it was sampled; the shares add up to the whole.
  t.true(p!.parts.some((x) => x.part === 'mfpsync agent' || x.part === 'mfpsync storage'));
  t.true(Math.abs(p!.parts.reduce((s, x) => s + x.share, 0) - 1) < 1e-9);
});
