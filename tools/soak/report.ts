/** The soak's report: counts, faults, recoveries, convergence, memory and the checks, as JSON or text. */
import { rssGrowth, type CheckResult } from './checks.js';
import type { DiskFullEpisode, Scenario } from './scenario.js';

/** Everything a run reports. */
export interface SoakReport {
  seed: number;
  durationMs: number;
  clients: number;
  wallMs: number;
  replay: string;
  changes: { written: number; failedWrites: number; acked: number; applied: number; duplicates: number; conflicts: number; rejected: number; unacked: number };
  faults: { planned: number; injected: Record<string, number>; skipped: Record<string, number>; cutsFired: number; skews: { client: string; planned: number; observed: number | null }[] };
  recoveries: { reconnects: number; restarts: number };
  switched: Scenario['switched'] | null;
  /** Disk-full faults: whether they were planned (a tmpfs could be mounted), why not, and each episode. */
  diskFull: { planned: boolean; reason?: string; episodes: DiskFullEpisode[] };
  conflicts: number;
  /** From the end of activity (all faults healed) to every checksum equal. */
  convergeMs: number | null;
  /** How long before the end of activity the last fault was healed. */
  quietMs: number;
  rss: { process: string; pid: number; warmMb: number; endMb: number }[];
  rssLimit: number;
  checks: CheckResult[];
  pass: boolean;
}

/** Builds the report of a finished (or failed) run. */
export function buildReport(
  s: Scenario,
  o: { seed: number; durationMs: number; clients: number; replay: string; wallMs: number; convergence: { ms: number | null }; checks: CheckResult[]; rssLimit: number; diskFull: { planned: boolean; reason?: string } },
): SoakReport {
  const count = { applied: 0, duplicates: 0, conflicts: 0, rejected: 0, unacked: 0 };
  for (const w of s.writes) {
    const a = w.change === undefined ? undefined : s.machines[w.client]?.acks.get(w.change);
    if (!a) count.unacked++;
    else if (a.status === 'applied') count.applied++;
    else if (a.status === 'duplicate') count.duplicates++;
    else if (a.status === 'conflict') count.conflicts++;
    else count.rejected++;
  }
  const mb = (kb: number) => Math.round(kb / 102.4) / 10;
  return {
    seed: o.seed,
    durationMs: o.durationMs,
    clients: o.clients,
    wallMs: o.wallMs,
    replay: o.replay,
    changes: { written: s.writes.length, failedWrites: s.interrupted.length, acked: count.applied + count.duplicates + count.conflicts + count.rejected, ...count },
    faults: {
      planned: s.o.plan.length,
      injected: s.faults,
      skipped: s.skipped,
      cutsFired: s.cutsFired,
      skews: s.machines.flatMap((m) => m.skews.map((k) => ({ client: m.name, ...k }))),
    },
    recoveries: { reconnects: s.machines.reduce((n, m) => n + Math.max(0, m.reconnects - 1), 0), restarts: s.restarts },
    switched: s.switched ?? null,
    diskFull: { ...o.diskFull, episodes: s.diskFull },
    conflicts: count.conflicts,
    convergeMs: o.convergence.ms,
    quietMs: Math.max(0, o.durationMs - s.lastHealAt),
    rss: rssGrowth(s, o.rssLimit).map((g) => ({ process: g.process, pid: g.pid, warmMb: mb(g.warmKb), endMb: mb(g.endKb) })),
    rssLimit: o.rssLimit,
    checks: o.checks,
    pass: o.checks.length > 0 && o.checks.every((c) => c.pass),
  };
}

/** Prints the report for a person. */
export function printReport(r: SoakReport, out: (line: string) => void): void {
  const c = r.changes;
  out(`soak seed ${r.seed}: ${r.clients} clients, ${r.durationMs / 1000} s of faults and activity, ${(r.wallMs / 1000).toFixed(1)} s in all`);
  out(`changes: ${c.written} written (${c.failedWrites} interrupted by a kill), ${c.acked} acknowledged: ${c.applied} applied, ${c.duplicates} duplicates, ${c.conflicts} conflicts, ${c.rejected} rejected; ${c.unacked} ack not seen`);
  const faults = Object.entries(r.faults.injected).map(([k, n]) => `${k} ${n}`).join(', ');
  const total = Object.values(r.faults.injected).reduce((a, b) => a + b, 0);
  out(`faults: ${total} injected of ${r.faults.planned} planned (${faults}); cuts that hit their offset: ${r.faults.cutsFired}`);
  if (Object.keys(r.faults.skipped).length > 0) out(`skipped: ${JSON.stringify(r.faults.skipped)}`);
  for (const k of r.faults.skews) out(`skew: ${k.client} ran ${k.planned} ms off; the server reported ${k.observed ?? 'nothing yet'}`);
  if (r.switched) out(`switch to the replica at ${(r.switched.at / 1000).toFixed(1)} s: copy at seq ${r.switched.copySeq} (server at ${r.switched.serverSeq}), last ack before the copy: ${r.switched.lastAckBeforeCopy}`);
  if (!r.diskFull.planned) out(`disk-full: none planned: ${r.diskFull.reason}`);
  for (const d of r.diskFull.episodes) {
    out(`disk-full at ${(d.at / 1000).toFixed(1)} s: the server's disk full for ${(d.holdMs / 1000).toFixed(1)} s (${d.refused ? 'STORE_WRITE_FAILED shown' : 'no write refused'}), ${d.ackedAfterFree} changes acknowledged after it was freed, then ${d.signal}`);
  }
  out(`recoveries: ${r.recoveries.reconnects} reconnects, ${r.recoveries.restarts} process restarts; conflicts: ${r.conflicts}`);
  out(`time to converge after activity stopped: ${r.convergeMs === null ? 'did not converge' : `${r.convergeMs} ms`} (the last fault was healed ${(r.quietMs / 1000).toFixed(1)} s before activity stopped)`);
  out(`rss (warm-up → end, limit +${Math.round(r.rssLimit * 100)} %): ${r.rss.map((x) => `${x.process} ${x.warmMb}→${x.endMb}`).join(', ')}`);
  for (const k of r.checks) out(`${k.pass ? 'PASS' : 'FAIL'} ${k.name}: ${k.detail}`);
  out(r.pass ? 'soak passed' : `soak FAILED — ${r.replay}`);
}
