/**
 * The simulator's live terminal view. `renderFrame` and `renderSummary` are pure (snapshot → text);
 * `TerminalView` redraws a frame in place with ANSI sequences, writing only when the frame changed,
 * and gives the terminal back as it found it (cursor shown) when it ends.
 */
import type { Writable } from 'node:stream';
import type { SimMachine, SimProgress, SimSnapshot, SimSummary } from './snapshot.js';

const BAR_WIDTH = 20;

/** m:ss, or h:mm:ss past an hour. */
export function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}` : `${Math.floor(s / 60)}:${p(s % 60)}`;
}

/** 512 B, 1.2 MB: one decimal where it helps. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** [########------------] of a fraction in [0, 1]. */
export function progressBar(fraction: number, width = BAR_WIDTH): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

function formatProgress(p: SimProgress): string {
  if (p.phase === 'loading') return `${progressBar(p.total > 0 ? p.done / p.total : 0)} ${p.done}/${p.total} users loaded`;
  if (p.phase === 'waiting') return `${progressBar(0)} waiting for the server (joins run one at a time)`;
  const bar = progressBar(p.total > 0 ? p.done / p.total : 1);
  const what = p.phase === 'applying' ? 'received, applying' : p.phase === 'done' ? 'joined' : 'received';
  return `${bar} ${p.done}/${p.total} users ${what}, ${formatBytes(p.bytes)}`;
}

function sleepColumn(m: SimMachine): string {
  if (m.role === 'server') return m.blockedBy === null ? '-' : m.blockedBy > 0 ? `deep sleep blocked (${m.blockedBy})` : 'may deep-sleep';
  return m.asleep ? 'asleep' : 'awake';
}

function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** Pads and aligns cells (numbers right, text left). */
function tableLines(headers: string[], rows: string[][], right: ReadonlySet<number>): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** One frame of the live view, each line cut to `width` columns (a wrapped line would break the redraw). */
export function renderFrame(s: SimSnapshot, width = 120): string {
  const clients = s.devices - 1;
  const header = `mfpsync sim · ${s.devices} machines (1 server, ${clients} client${clients === 1 ? '' : 's'}) · ${s.users} users · ${s.rate} edits/s · seed ${s.seed}`;
  const rows = s.machines.map((m) => [
    m.name,
    m.role,
    m.state,
    m.lag === null ? '-' : String(m.lag),
    m.changesPerSec.toFixed(1),
    String(m.users),
    sleepColumn(m),
  ]);
  const table = tableLines(['MACHINE', 'ROLE', 'STATE', 'LAG', 'CHANGES/S', 'USERS', 'SLEEP'], rows, new Set([3, 4, 5]));
  const indent = table[0]!.indexOf('STATE');
  const t = s.totals;
  const lines = [
    `${header}   ${s.phase} ${formatElapsed(s.elapsedMs)}`,
    '',
    table[0]!,
    // A machine loading or joining gets its progress bar on a line of its own, under its row.
    ...table.slice(1).flatMap((row, i) => {
      const p = s.machines[i]!.progress;
      return p && p.phase !== 'done' ? [row, `${' '.repeat(indent)}${formatProgress(p)}`] : [row];
    }),
    '',
    `edits ${t.edits} · logins ${t.logins} · sleeps ${t.sleeps} · propagated ${t.propagated} · ` +
      `propagation p50 ${formatMs(t.p50Ms)} p95 ${formatMs(t.p95Ms)} · conflicts ${t.conflicts} · errors ${t.errors}`,
  ];
  const failed = s.machines.filter((m) => m.error !== null);
  for (const m of failed) lines.push(`! ${m.name}: ${m.error}`);
  lines.push('', s.phase === 'done' ? 'stopped: every agent closed' : s.phase === 'stopping' ? 'stopping: closing the agents…' : 'Ctrl-C stops');
  return lines.map((l) => (l.length > width ? l.slice(0, Math.max(1, width - 1)) + '…' : l)).join('\n');
}

/** The one-paragraph summary printed at the end. */
export function renderSummary(s: SimSummary): string {
  const t = s.totals;
  const clients = s.devices - 1;
  const by = { duration: 'after its duration', SIGINT: 'by Ctrl-C', SIGTERM: 'by SIGTERM', error: 'by an error' }[s.stoppedBy];
  const parts = [
    `Simulated ${s.devices} machines (1 server, ${clients} client${clients === 1 ? '' : 's'}) with ${s.users} users for ${(s.elapsedMs / 1000).toFixed(1)} s (seed ${s.seed}), stopped ${by}:`,
    `${t.edits} edits and ${t.logins} logins on the clients, ${t.propagated} changes propagated to other clients` +
      (t.p50Ms === null ? '' : ` (edit to remote item-changed p50 ${formatMs(t.p50Ms)}, p95 ${formatMs(t.p95Ms)})`) +
      `, ${t.sleeps} sleep/wake cycle${t.sleeps === 1 ? '' : 's'}, ${t.conflicts} conflict${t.conflicts === 1 ? '' : 's'};`,
    s.settled ? 'every client ended synchronized, nothing queued, no cursor lag.' : `the clients did not all settle (largest cursor lag ${s.maxLag}).`,
  ];
  if (s.errors.length > 0) parts.push(`${s.errors.length} error${s.errors.length === 1 ? '' : 's'}: ${s.errors.join('; ')}.`);
  parts.push(s.dirRemoved ? `Temporary data in ${s.dir} removed.` : `Temporary data in ${s.dir} could NOT be removed: delete it by hand.`);
  return parts.join(' ');
}

const ESC = '\x1b[';

/** Redraws frames in place on a terminal: cursor home, each line cleared to its end, the rest erased. */
export class TerminalView {
  readonly #out: Writable & { columns?: number };
  #last = '';
  #active = false;

  constructor(out: Writable & { columns?: number }) {
    this.#out = out;
  }

  /** Clears the screen and hides the cursor. */
  begin(): void {
    if (this.#active) return;
    this.#active = true;
    this.#out.write(`${ESC}?25l${ESC}2J${ESC}H`);
  }

  /** Draws a snapshot, unless the frame is the one on screen. */
  draw(s: SimSnapshot): void {
    if (!this.#active) return;
    // A pseudo-terminal may report 0 columns: then assume a wide one.
    const frame = renderFrame(s, this.#out.columns || 120);
    if (frame === this.#last) return;
    this.#last = frame;
    this.#out.write(`${ESC}H${frame.split('\n').join(`${ESC}K\n`)}${ESC}K\n${ESC}J`);
  }

  /** Shows the cursor again; the last frame stays on screen. */
  end(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#out.write(`${ESC}?25h`);
  }
}
