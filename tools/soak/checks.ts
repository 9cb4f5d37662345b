/**
 * The soak's end checks, each a named pass/fail with its evidence. They run after the faults stopped
 * and the group converged (or the deadline passed); the definitions are in the README's Soak section.
 */
import { until, type Ack, type Scenario } from './scenario.js';

/** The outcome of one check. */
export interface CheckResult {
  name: string;
  pass: boolean;
  detail: string;
}

type Checksums = Map<string, string | null>;

async function checksums(proc: { control<T>(m: string, p?: Record<string, unknown>): Promise<T> }): Promise<Checksums> {
  const { users } = await proc.control<{ users: { kind: string; id: string; checksum: string | null }[] }>('users.list', { checksums: true });
  return new Map(users.filter((u) => u.kind === 'user').map((u) => [u.id, u.checksum]));
}

/**
 * Waits until every client is live with an empty queue and every user it holds has the server's
 * checksum. Returns the time it took, or null past the deadline, with the last mismatches seen.
 */
export async function converge(s: Scenario, deadlineMs: number): Promise<{ ms: number | null; mismatches: string[] }> {
  const t0 = Date.now();
  let mismatches: string[] = [];
  const ok = await until(async () => {
    const server = await checksums(s.server);
    const found: string[] = [];
    for (const m of s.machines) {
      const st = await m.proc.control<{ client?: { state: string; queued: number } }>('status');
      if (st.client?.state !== 'live' || st.client.queued > 0) found.push(`${m.name}: ${st.client?.state ?? 'no client'}, ${st.client?.queued ?? '?'} queued`);
      for (const [user, sum] of await checksums(m.proc)) if (server.get(user) !== sum) found.push(`${m.name}/${user}`);
    }
    mismatches = found;
    return found.length === 0;
  }, deadlineMs);
  if (!ok) mismatches = await Promise.all(mismatches.map((m) => explain(s, m)));
  return { ms: ok ? Date.now() - t0 : null, mismatches };
}

type Items = Record<string, { value: { soak?: string } | null; version: number; set: boolean }>;

/** For a `client/user` mismatch: the items whose version or value differ, client against server. */
async function explain(s: Scenario, mismatch: string): Promise<string> {
  const [name, user] = mismatch.split('/');
  const m = s.machines.find((x) => x.name === name);
  if (!m || user === undefined) return mismatch;
  const get = async (p: typeof s.server) => (await p.control<{ items: Items }>('item.get', { kind: 'user', id: user })).items;
  const [mine, theirs] = await Promise.all([get(m.proc), get(s.server)]);
  const diff = Object.keys(theirs)
    .filter((n) => mine[n]!.version !== theirs[n]!.version || mine[n]!.value?.soak !== theirs[n]!.value?.soak)
    .map((n) => `${n} client v${mine[n]!.version} ${mine[n]!.value?.soak ?? (mine[n]!.set ? '?' : 'unset')} / server v${theirs[n]!.version} ${theirs[n]!.value?.soak ?? (theirs[n]!.set ? '?' : 'unset')}`);
  const { conflicts } = await m.proc.control<{ conflicts: { entity: string; item: string; value: { soak?: string } | null; reason: string; base: number; serverVersion: number; at: number }[] }>('conflicts.list');
  const lost = conflicts.filter((c) => c.entity === `u:${user}`).map((c) => `${c.item} ${c.value?.soak} ${c.reason} base ${c.base} server v${c.serverVersion}`);
  const { entries } = await m.proc.control<{ entries: { code: string; message: string; at: number }[] }>('log');
  const joins = entries.filter((e) => e.code === 'JOINED' || e.code === 'CONNECTED').map((e) => `${e.code}@${e.at}`);
  return `${mismatch} (${diff.join(', ') || 'same versions and values'}; client conflicts of the user: ${lost.join(', ') || 'none'}; joins: ${joins.slice(-4).join(' ')})`;
}

/** Every check, in order. */
export async function runChecks(s: Scenario, convergence: { ms: number | null; mismatches: string[] }, rssLimit: number): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const server = s.server;
  const ackOf = (w: { client: number; change?: number }): Ack | undefined => (w.change === undefined ? undefined : s.machines[w.client]!.acks.get(w.change));

  // (1) Acknowledged changes are on the server: at the acknowledged version with this write's value,
  // or at a later version (a later write of the item, whose value is itself one of the soak's writes,
  // possibly one whose item.set was cut short by a kill after the change was queued).
  const users = [...new Set(s.writes.map((w) => w.user))];
  const serverItems = new Map<string, Record<string, { value: { soak?: string } | null; version: number }>>();
  for (const u of users) serverItems.set(u, (await server.control<{ items: Record<string, { value: { soak?: string } | null; version: number }> }>('item.get', { kind: 'user', id: u })).items);
  const tags = new Set([...s.writes.map((w) => w.tag), ...s.interrupted]);
  const lost: string[] = [];
  let acked = 0;
  for (const w of s.writes) {
    const a = ackOf(w);
    if (!a || (a.status !== 'applied' && a.status !== 'duplicate')) continue;
    acked++;
    const cur = serverItems.get(w.user)?.[w.item];
    const v = a.v ?? 0;
    const tag = cur?.value?.soak;
    const ok = cur !== undefined && (cur.version > v ? tag !== undefined && tags.has(tag) : cur.version === v && (a.status === 'duplicate' || tag === w.tag));
    if (!ok) lost.push(`${w.tag} ${w.user}/${w.item} acked ${a.status} v${v}, server v${cur?.version ?? '-'} ${tag ?? '-'}`);
  }
  // A disk-full episode ends with a server restart after changes were acknowledged on the freed disk:
  // this check is what finds them (or not) after it.
  const afterFree = s.diskFull.reduce((n, d) => n + d.ackedAfterFree, 0);
  const episodes = s.diskFull.length > 0 ? ` (${afterFree} of them acknowledged after ${s.diskFull.length} full disk(s) were freed, before the restart that followed)` : '';
  results.push({ name: 'acknowledged changes on the server', pass: lost.length === 0, detail: lost.length ? `${lost.length} of ${acked}: ${lost.slice(0, 5).join('; ')}` : `${acked} acknowledged changes, each at its version or superseded by a later write${episodes}` });

  // (2) Convergence.
  results.push({
    name: 'all clients converge',
    pass: convergence.ms !== null,
    detail: convergence.ms !== null ? `per-user checksums equal the server's on every client ${convergence.ms} ms after activity stopped` : `not within the deadline: ${convergence.mismatches.slice(0, 8).join('; ')}`,
  });

  // (3) Exactly once: the server decided each device's changes once each (processed == last counter),
  // and took every change the client queued (last counter >= the highest item.set returned).
  const { devices } = await server.control<{ devices: { name: string; lastChange: number; processedChanges: number }[] }>('devices.list');
  const twice: string[] = [];
  for (const m of s.machines) {
    const d = devices.find((x) => x.name === m.name);
    if (!d || d.processedChanges !== d.lastChange || d.lastChange < m.maxChange) twice.push(`${m.name}: processed ${d?.processedChanges}, last ${d?.lastChange}, client queued up to ${m.maxChange}`);
  }
  results.push({ name: 'no change applied twice', pass: twice.length === 0, detail: twice.length ? twice.join('; ') : `${s.machines.length} clients: processed = last change counter = every change queued` });

  // (4) Every offline edit that lost is in the conflict log of the client that made it.
  const missing: string[] = [];
  let lostEdits = 0;
  let logged = 0;
  for (const m of s.machines) {
    const { conflicts } = await m.proc.control<{ conflicts: { entity: string; item: string; value: { soak?: string } | null; log: string }[] }>('conflicts.list');
    const local = conflicts.filter((c) => c.log === 'local');
    logged += local.length;
    const have = new Set(local.map((c) => `${c.entity}|${c.item}|${c.value?.soak}`));
    for (const w of s.writes) {
      if (w.client !== m.index || ackOf(w)?.status !== 'conflict') continue;
      lostEdits++;
      if (!have.has(`u:${w.user}|${w.item}|${w.tag}`)) missing.push(`${w.tag} ${w.user}/${w.item}`);
    }
  }
  results.push({ name: 'every overridden edit in the conflict log', pass: missing.length === 0, detail: missing.length ? `${missing.length} of ${lostEdits} missing: ${missing.slice(0, 5).join('; ')}` : `${lostEdits} lost edits, all logged (${logged} conflict entries on the clients)` });

  // (5) Bounded memory: per process incarnation, the end sample against its warm-up plateau.
  const grew = rssGrowth(s, rssLimit);
  results.push({ name: 'no process grew without bound', pass: grew.every((g) => g.pass), detail: grew.filter((g) => !g.pass).map((g) => g.line).join('; ') || `${grew.length} processes within +${Math.round(rssLimit * 100)} % of their warm-up plateau` });
  return results;
}

/** One process's memory between its warm-up plateau and the end. */
export interface RssGrowth {
  process: string;
  pid: number;
  warmKb: number;
  endKb: number;
  pass: boolean;
  line: string;
}

/**
 * Warm-up plateau: the median of a process incarnation's samples from 25 % to 40 % of the run (it
 * started before and ran through); end: the median of its last three samples. Incarnations that did
 * not run through the warm-up window (restarted by a fault later) are not compared, nor the replica if
 * it became the server after its warm-up window (its role changed, and its memory with it).
 */
export function rssGrowth(s: Scenario, limit: number): RssGrowth[] {
  const lo = s.o.durationMs * 0.25;
  const hi = s.o.durationMs * 0.4;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const byPid = new Map<number, typeof s.rss>();
  for (const r of s.rss) byPid.set(r.pid, [...(byPid.get(r.pid) ?? []), r]);
  const out: RssGrowth[] = [];
  for (const [pid, samples] of byPid) {
    const warm = samples.filter((x) => x.at >= lo && x.at <= hi).map((x) => x.kb);
    if (warm.length === 0 || samples[0]!.at > lo || samples[samples.length - 1]!.at < s.o.durationMs) continue;
    // The replica became the server at the switch: a new role, not growth, if its plateau was before.
    if (s.switched && samples[0]!.process === 'replica' && s.switched.at > lo) continue;
    const warmKb = median(warm);
    const endKb = median(samples.slice(-3).map((x) => x.kb));
    const pass = endKb <= warmKb * (1 + limit);
    out.push({ process: samples[0]!.process, pid, warmKb, endKb, pass, line: `${samples[0]!.process} ${(warmKb / 1024).toFixed(1)} → ${(endKb / 1024).toFixed(1)} MB` });
  }
  return out;
}
