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

/** The human table. */
export function formatTable(report: Report): string {
  const lines: string[] = [];
  const m = report.meta;
  lines.push(`mfpsync bench — ${String(m.mode)} run, ${String(m.node)}, ${String(m.platform)}, ${String(m.cpus)} cpu(s), temp ${String(m.tempDir)} (${String(m.tempFs)}), ${fmtMs(Number(m.durationMs))}`);
  lines.push('');
  lines.push('Baselines (physical, same run)');
  const bw = Math.max(...report.baselines.map((b) => b.name.length), 10) + 2;
  for (const b of report.baselines) lines.push(`  ${pad(b.name, bw)}${b.text}`);
  lines.push('');
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'result'];
  const cells = report.rows.map((r) => [
    r.figure,
    fmt(r.value, r.unit, r.rateUnit),
    r.baseline ? `${fmt(r.baseline.value, r.baseline.unit, r.baseline.rateUnit)} (${r.baseline.label})` : '—',
    r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '—',
    r.target?.text ?? 'info',
    r.result ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => pad(x, widths[i]!)).join('  ').trimEnd();
  let section = '';
  lines.push(line(header));
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  report.rows.forEach((r, i) => {
    if (r.section !== section) {
      section = r.section;
      lines.push(`[${section}]`);
    }
    lines.push(line(cells[i]!));
  });
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
