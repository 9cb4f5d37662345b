/**
 * The benchmark's result: one row per figure (value, the baseline it is divided by, the ratio, the
 * target and whether it is met), notes that explain a figure, and the two ways of printing them — a
 * table for people, one JSON document for machines. PASS/MISS is informational: nothing fails a build.
 */
import { formatProfiles, type ProfileSummary } from './profile.js';
import { fmtBytes, fmtMs, fmtRate } from './stats.js';

/** Units a value can have. */
export type Unit = 'ms' | 'bytes' | 'per-second' | 'count' | 'ratio';

/** A target: on the value itself or on the ratio to the baseline. */
export interface Target {
  on: 'value' | 'ratio';
  /** The figure must be at most this (or at least, with `atLeast`). */
  limit: number;
  atLeast?: boolean;
  text: string;
}

/** One figure. */
export interface Row {
  section: string;
  figure: string;
  value: number;
  unit: Unit;
  /** Rate unit for per-second values ("changes"). */
  rateUnit?: string;
  baseline?: { value: number; unit: Unit; label: string; rateUnit?: string };
  ratio?: number;
  target?: Target;
  result?: 'PASS' | 'MISS';
}

/** A baseline line of the report. */
export interface BaselineLine {
  name: string;
  text: string;
  values: Record<string, number>;
}

/** The whole report. */
export interface Report {
  meta: Record<string, unknown>;
  baselines: BaselineLine[];
  rows: Row[];
  notes: string[];
  errors: string[];
  /** With --profile: where each profiled figure's time went. */
  profiles?: ProfileSummary[];
  /** With --peers: mfpsync beside a peer on the same workload. */
  peers?: PeerTable;
}

/** mfpsync and a peer on the same workload: medians of `runs` runs per column, and each mfpsync column ÷ the peer's. */
export interface PeerTable {
  peer: string;
  runs: number;
  /** mfpsync's columns first, the peer's last. */
  columns: string[];
  rows: { figure: string; unit: Unit; values: Record<string, number>; ratios: Record<string, number> }[];
}

/** Fills in ratio and result of a row from its baseline and target. */
export function row(r: Omit<Row, 'ratio' | 'result'>): Row {
  const out: Row = { ...r };
  if (r.baseline && r.baseline.value > 0 && Number.isFinite(r.value)) out.ratio = r.value / r.baseline.value;
  if (r.target) {
    const x = r.target.on === 'ratio' ? out.ratio : r.value;
    if (x !== undefined && Number.isFinite(x)) out.result = (r.target.atLeast ? x >= r.target.limit : x <= r.target.limit) ? 'PASS' : 'MISS';
  }
  return out;
}

/** Formats a value with its unit. */
export function fmt(value: number, unit: Unit, rateUnit = ''): string {
  switch (unit) {
    case 'ms': return fmtMs(value);
    case 'bytes': return fmtBytes(value);
    case 'per-second': return fmtRate(value, rateUnit);
    case 'ratio': return `${value.toFixed(2)}×`;
    case 'count': return String(Math.round(value));
  }
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Lines of a table: a header, a rule, and the cells padded to their column's width. */
function columns(header: string[], cells: string[][], o: { before?: (i: number) => string | undefined } = {}): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => pad(x, widths[i]!)).join('  ').trimEnd();
  const lines = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  cells.forEach((c, i) => {
    const heading = o.before?.(i);
    if (heading !== undefined) lines.push(heading);
    lines.push(line(c));
  });
  return lines;
}

/** The peers' table: one row per figure, a column per system, then mfpsync ÷ the peer per mfpsync column. */
export function formatPeers(t: PeerTable): string[] {
  const peer = t.columns[t.columns.length - 1]!;
  const ours = t.columns.slice(0, -1);
  const header = ['figure', ...t.columns, ...ours.map((c) => `${c} ÷ ${peer}`)];
  const cells = t.rows.map((r) => [
    r.figure,
    ...t.columns.map((c) => fmt(r.values[c]!, r.unit)),
    ...ours.map((c) => (Number.isFinite(r.ratios[c]) ? `${r.ratios[c]!.toFixed(2)}×` : '—')),
  ]);
  return [`mfpsync vs ${t.peer} (${peer}), same workload, median of ${t.runs} run(s); below 1× mfpsync is faster`, ...columns(header, cells)];
}

/** The human table. */
export function formatTable(report: Report): string {
  const lines: string[] = [];
  const m = report.meta;
  lines.push(`mfpsync bench — ${String(m.mode)} run, ${String(m.node)}, ${String(m.platform)}, ${String(m.cpus)} cpu(s), temp ${String(m.tempDir)} (${String(m.tempFs)}), ${fmtMs(Number(m.durationMs))}`);
  if (report.baselines.length > 0) {
    lines.push('');
    lines.push('Baselines (physical, same run)');
    const bw = Math.max(...report.baselines.map((b) => b.name.length), 10) + 2;
    for (const b of report.baselines) lines.push(`  ${pad(b.name, bw)}${b.text}`);
  }
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'result'];
  const cells = report.rows.map((r) => [
    r.figure,
    fmt(r.value, r.unit, r.rateUnit),
    r.baseline ? `${fmt(r.baseline.value, r.baseline.unit, r.baseline.rateUnit)} (${r.baseline.label})` : '—',
    r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '—',
    r.target?.text ?? 'info',
    r.result ?? '',
  ]);
  if (report.rows.length > 0) {
    lines.push('');
    const sections = report.rows.map((r, i) => (i === 0 || report.rows[i - 1]!.section !== r.section ? `[${r.section}]` : undefined));
    lines.push(...columns(header, cells, { before: (i) => sections[i] }));
  }
  if (report.peers) {
    lines.push('');
    lines.push(...formatPeers(report.peers));
  }
  if (report.notes.length > 0) {
    lines.push('');
    lines.push('Notes');
    for (const n of report.notes) lines.push(`  - ${n}`);
  }
  if (report.profiles && report.profiles.length > 0) {
    lines.push('');
    lines.push('Profiles (share of the sampled time; self time per function)');
    lines.push(...formatProfiles(report.profiles));
  }
  if (report.errors.length > 0) {
    lines.push('');
    lines.push('Errors (figures missing from the table)');
    for (const e of report.errors) lines.push(`  ! ${e}`);
  }
  return lines.join('\n');
}
