/**
 * `--profile DIR`: where a figure's time went. The measured part of an in-process figure runs under
 * the inspector's CPU profiler; the machines of the throughput figure (child processes) run with
 * Node's `--cpu-prof`. Every profile is written to DIR as a `.cpuprofile` (Chrome DevTools, VS Code)
 * and summarised in the report: the share of the sampled time per part — waiting for I/O, garbage
 * collection, each dependency, Node's internals, mfpsync's own protocol, storage and agent code — and
 * the functions with the most self time. This is the evidence behind a figure that misses its target.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { basename, join } from 'node:path';

/** A V8 CPU profile, as the inspector and --cpu-prof write it. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One summarised profile (or several processes' profiles added up). */
export interface ProfileSummary {
  label: string;
  files: string[];
  sampledMs: number;
  /** Share of the sampled time per part, largest first. */
  parts: { part: string; ms: number; share: number }[];
  /** Functions with the most self time, outside idle and GC. */
  top: { fn: string; ms: number; share: number }[];
}

/** What a run with --profile collects. */
export interface Profiling {
  dir: string;
  summaries: ProfileSummary[];
}

/** Sampling interval, µs: fine enough for a 1 ms change path, coarse enough to cost little. */
const INTERVAL_US = 200;
const TOP = 8;

const DEPENDENCY_PARTS: Record<string, string> = {
  tweetnacl: 'tweetnacl (encryption)',
  msgpackr: 'msgpackr (MessagePack)',
  ws: 'ws (WebSocket)',
  'abstract-level': 'level (LevelDB binding)',
  'classic-level': 'level (LevelDB binding)',
  level: 'level (LevelDB binding)',
  'level-transcoder': 'level (LevelDB binding)',
  'module-error': 'level (LevelDB binding)',
};

/** The part of the program a sampled function belongs to. */
export function partOf(url: string, functionName: string): string {
  switch (functionName) {
    case '(idle)': return 'idle (waiting for I/O)';
    case '(garbage collector)': return 'garbage collection';
    case '(program)': return 'V8 and native code outside JavaScript';
    case '(root)': return 'idle (waiting for I/O)';
  }
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (dep) return DEPENDENCY_PARTS[dep] ?? dep;
  if (url.startsWith('node:')) return 'Node.js internals';
  const own = /\/dist\/(protocol|storage|agent|tools)\//.exec(url)?.[1];
  if (own) return own === 'tools' ? 'mfpsync tools (benchmark harness)' : `mfpsync ${own}`;
  if (url === '') return 'native functions (hashing, syscalls, builtins)';
  return 'other';
}

/**
 * A span of time on the host's monotonic clock, in ms (stats.ts `hrNow`): V8 stamps its samples with
 * the same clock, in µs, so a summary can keep only the samples taken while a figure's load ran.
 */
export interface TimeWindow {
  from: number;
  to: number;
}

/** Self time per profile node, µs: each sample owns the time until the next one (within `window`, if given). */
function selfTimes(p: CpuProfile, window?: TimeWindow): Map<number, number> {
  const self = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window && (t / 1000 < window.from || t / 1000 > window.to)) continue;
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : 0;
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + Math.max(0, dt));
  }
  return self;
}

/** Adds up one or more profiles into parts and hottest functions. */
export function summarizeProfiles(label: string, profiles: readonly { file: string; profile: CpuProfile }[], window?: TimeWindow): ProfileSummary {
  const parts = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const { profile } of profiles) {
    const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    for (const [id, us] of selfTimes(profile, window)) {
      const f = byId.get(id);
      if (!f) continue;
      total += us;
      const part = partOf(f.url, f.functionName);
      parts.set(part, (parts.get(part) ?? 0) + us);
      // V8's pseudo-frames — (idle), (garbage collector), (program), (root) — are parts, not functions.
      if (f.functionName.startsWith('(')) continue;
      const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : 'native';
      const key = `${f.functionName || '(anonymous)'} (${where})`;
      fns.set(key, (fns.get(key) ?? 0) + us);
    }
  }
  const share = (us: number) => (total > 0 ? us / total : 0);
  return {
    label,
    files: profiles.map((p) => p.file),
    sampledMs: total / 1000,
    parts: [...parts].sort((a, b) => b[1] - a[1]).map(([part, us]) => ({ part, ms: us / 1000, share: share(us) })),
    top: [...fns].sort((a, b) => b[1] - a[1]).slice(0, TOP).map(([fn, us]) => ({ fn, ms: us / 1000, share: share(us) })),
  };
}

/** File-system-safe name of a label. */
function fileName(label: string): string {
  return label.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
}

/**
 * Runs `fn`; with profiling on, under the inspector's CPU profiler: the profile is written to the
 * profile folder as LABEL.cpuprofile and its summary joins the report.
 */
export async function profiled<T>(profiling: Profiling | undefined, label: string, fn: () => Promise<T>): Promise<T> {
  if (!profiling) return fn();
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: INTERVAL_US });
    await session.post('Profiler.start');
    let result: T;
    try {
      result = await fn();
    } finally {
      const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
      const file = join(profiling.dir, `${fileName(label)}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      profiling.summaries.push(summarizeProfiles(`${label} (in-process: every agent of the figure on one event loop)`, [{ file, profile }]));
    }
    return result;
  } finally {
    session.disconnect();
  }
}

/** Node options that make a child process write its CPU profile into the profile folder at exit. */
export function cpuProfArgs(profiling: Profiling | undefined, name: string): string[] {
  if (!profiling) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${profiling.dir}`, `--cpu-prof-name=${fileName(name)}.cpuprofile`, `--cpu-prof-interval=${INTERVAL_US}`];
}

/**
 * Summarises the profiles child processes wrote (named by cpuProfArgs) once they have exited: the whole
 * run, or only the samples within `window`.
 */
export function summarizeChildren(profiling: Profiling | undefined, label: string, names: readonly string[], window?: TimeWindow): void {
  if (!profiling) return;
  const files = names.map((n) => join(profiling.dir, `${fileName(n)}.cpuprofile`));
  const profiles = files.map((file) => ({ file, profile: JSON.parse(readFileSync(file, 'utf8')) as CpuProfile }));
  profiling.summaries.push(summarizeProfiles(label, profiles, window));
}

/** The report's lines for the summaries. */
export function formatProfiles(summaries: readonly ProfileSummary[]): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  const lines: string[] = [];
  for (const s of summaries) {
    const where = s.files.length === 1 ? s.files[0]! : `${s.files.length} files in ${s.files[0] ? s.files[0].replace(/\/[^/]*$/, '') : '?'}`;
    lines.push(`  ${s.label}: ${(s.sampledMs / 1000).toFixed(2)} s sampled (${where})`);
    lines.push(`    parts:   ${s.parts.filter((p) => p.share >= 0.005).map((p) => `${p.part} ${pct(p.share)}`).join(' · ')}`);
    lines.push(`    hottest: ${s.top.map((f) => `${f.fn} ${pct(f.share)}`).join(' · ')}`);
  }
  return lines;
}
