/**
 * The soak's fault schedule: every fault — what, when, on which machine, how long, how hard — is drawn
 * from the seeded PRNG before the run starts, so a failing seed replays the same faults. (The agents'
 * own timing is not deterministic; the schedule is.) Every kind is planned at least once per run.
 */
import { rng } from '../bench/records.js';

/** The kinds of fault the soak injects. */
export const FAULT_KINDS = [
  'latency', 'bandwidth', 'slice', 'stall', 'reset', 'cut', 'partition', 'kill-client', 'kill-server', 'sleep', 'skew', 'switch', 'disk-full',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One planned fault. */
export interface PlannedFault {
  /** ms after the activity starts. */
  at: number;
  kind: FaultKind;
  /** Client index; -1: the server (kill-server, switch, disk-full). */
  target: number;
  /** How long the fault holds before it is healed (0: instantaneous). */
  holdMs: number;
  /** Kind-specific strength: delay ms, bytes/s, slice bytes, cut offset, skew ms. */
  param: number;
  /** For latency: jitter ms; for a cut: 1 = server → client, 0 = client → server; for disk-full: 1 = the restart after it is a SIGKILL, 0 = a SIGTERM. */
  param2: number;
}

/** What the plan depends on. */
export interface PlanOptions {
  seed: number;
  durationMs: number;
  clients: number;
  /** Whether disk-full faults can run (a tmpfs can be mounted: root); without, none is planned. */
  diskFull: boolean;
}

/** The kinds a run plans: every kind, but disk-full only where a tmpfs can be mounted. */
export function plannedKinds(o: Pick<PlanOptions, 'diskFull'>): FaultKind[] {
  return FAULT_KINDS.filter((k) => o.diskFull || k !== 'disk-full');
}

/** Faults start after this share of the run (warm-up) and stop this long before its end (quiet). */
export const WARMUP_SHARE = 0.15;
const QUIET_SHARE = 0.1;

/** The deterministic schedule of one run. */
export function planFaults(o: PlanOptions): PlannedFault[] {
  const r = rng(o.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const start = Math.round(o.durationMs * WARMUP_SHARE);
  const end = Math.round(o.durationMs * (1 - QUIET_SHARE));
  const span = end - start;
  // Faults that restart a process spare the last third of the clients: processes that run through
  // the whole soak are what the memory check compares.
  const restartable = Math.max(1, Math.ceil((o.clients * 2) / 3));
  const draw = (kind: FaultKind, at: number): PlannedFault => {
    const target = kind === 'kill-server' || kind === 'switch' || kind === 'disk-full' ? -1 : int(0, (kind === 'kill-client' || kind === 'skew' ? restartable : o.clients) - 1);
    switch (kind) {
      case 'latency': return { at, kind, target, holdMs: int(2000, 8000), param: int(20, 250), param2: int(0, 150) };
      case 'bandwidth': return { at, kind, target, holdMs: int(2000, 8000), param: int(2000, 40_000), param2: 0 };
      case 'slice': return { at, kind, target, holdMs: int(2000, 8000), param: int(1, 24), param2: 0 };
      case 'stall': return { at, kind, target, holdMs: int(1000, 5000), param: 0, param2: 0 };
      case 'reset': return { at, kind, target, holdMs: 0, param: 0, param2: 0 };
      case 'cut': return { at, kind, target, holdMs: int(1000, 4000), param: int(0, 3000), param2: int(0, 1) };
      case 'partition': return { at, kind, target, holdMs: int(2000, 8000), param: 0, param2: 0 };
      case 'kill-client': return { at, kind, target, holdMs: int(200, 2500), param: 0, param2: 0 };
      case 'kill-server': return { at, kind, target, holdMs: int(300, 2500), param: 0, param2: 0 };
      case 'sleep': return { at, kind, target, holdMs: int(2000, 6000), param: 0, param2: 0 };
      // Some skews stay inside the 60 s bound, most are beyond it (a CLOCK_SKEW warning on the server).
      case 'skew': return { at, kind, target, holdMs: int(3000, 8000), param: (r() < 0.5 ? -1 : 1) * int(5_000, 300_000), param2: 0 };
      case 'switch': return { at, kind, target, holdMs: 0, param: 0, param2: 0 };
      // The server's data directory (a tmpfs) is full for the hold, then freed; a restart follows.
      case 'disk-full': return { at, kind, target, holdMs: int(500, 2000), param: 0, param2: int(0, 1) };
    }
  };
  const faults: PlannedFault[] = [];
  // The server is replaced by its replica once, in the middle; every other kind at least once.
  faults.push(draw('switch', start + Math.round(span * (0.45 + 0.1 * r()))));
  const kinds = plannedKinds(o);
  for (const kind of kinds) if (kind !== 'switch') faults.push(draw(kind, start + int(0, span)));
  // Then one fault every ~1.2 s on average; server kills and full disks are rarer (each one stops the
  // whole group).
  const extra = Math.round(span / 1200);
  const common = kinds.filter((k) => k !== 'switch' && k !== 'kill-server' && k !== 'disk-full');
  for (let i = 0; i < extra; i++) {
    const p = r();
    const kind = p < 0.04 ? 'kill-server' : p < 0.05 && o.diskFull ? 'disk-full' : common[int(0, common.length - 1)]!;
    faults.push(draw(kind, start + int(0, span)));
  }
  return faults.sort((a, b) => a.at - b.at || FAULT_KINDS.indexOf(a.kind) - FAULT_KINDS.indexOf(b.kind) || a.target - b.target);
}

/** Parses `90s`, `10m`, `1h` or plain milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new TypeError(`not a duration: ${JSON.stringify(text)} (e.g. 90s, 10m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}
