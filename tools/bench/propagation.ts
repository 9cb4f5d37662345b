/**
 * Figure 2 — change propagation: client A → server (durable) → client B, one change at a time, timed
 * from `A.setItem` to B's `item-changed` (source remote). Three in-process agents on real LevelDB
 * folders. The path is split with the server's own commit listener so a miss can be attributed:
 * setItem → server commit, server commit → B applied (A's own write runs while the change is sent).
 */
import { cpus } from 'node:os';
import type { Agent } from '../../agent/agent.js';
import type { Durability } from '../../storage/store.js';
import { joinAs, nextAck, openAgent, openServer, remoteChange } from './agents.js';
import type { Ctx } from './context.js';
import { profiled } from './profile.js';
import { row } from './report.js';
import { fmtMs, now, summarize } from './stats.js';

/** The values a change cycles through. */
export const LANGS = [['fr', 'fr-FR'], ['de', 'de-DE'], ['ja', 'ja-JP'], ['it', 'it-IT']] as const;

/** Hooks of `changeSamples`: before each change, and with each measured sample's stamps. */
export interface SampleHooks {
  samples: number;
  warmup: number;
  onStart?(): void;
  /** setItem called at t0, resolved at t1; B's item-changed at t2. */
  onSample?(t0: number, t1: number, t2: number): void;
}

/**
 * Changes `user`'s language on A one at a time and times each to B's item-changed (remote); the next
 * change starts only once A has settled its acknowledgement, so samples never overlap. Returns the
 * totals of the samples after the warm-up, ms. Both must hold the user.
 */
export async function changeSamples(a: Agent, b: Agent, user: string, o: SampleHooks): Promise<number[]> {
  const total: number[] = [];
  for (let i = 0; i < o.warmup + o.samples; i++) {
    const [display, keyboard] = LANGS[i % LANGS.length]!;
    const arrived = remoteChange(b, user, 'language');
    const acked = nextAck(a);
    o.onStart?.();
    const t0 = now();
    await a.setItem('user', user, 'language', { display, keyboard, n: i });
    const t1 = now();
    await arrived;
    const t2 = now();
    await acked;
    if (i < o.warmup) continue;
    total.push(t2 - t0);
    o.onSample?.(t0, t1, t2);
  }
  return total;
}

/** Runs figure 2 for one durability. */
export async function propagation(ctx: Ctx, durability: Durability): Promise<void> {
  const scope = ctx.cleanup.scope();
  try {
    const server = await openServer(scope, ctx.tmp, { name: `prop-s-${durability}`, durability });
    const a = await openAgent(scope, ctx.tmp, { name: `prop-a-${durability}`, durability });
    const b = await openAgent(scope, ctx.tmp, { name: `prop-b-${durability}`, durability });
    await joinAs(a, server.port);
    await joinAs(b, server.port);
    const user = 'prop-user';
    // The user exists on the server first (A writes it), then B logs in and receives it.
    const created = nextAck(a);
    await a.setItem('user', user, 'language', { display: 'en', keyboard: 'en-US' });
    await created;
    const fetched = remoteChange(b, user, 'language');
    await b.login(user);
    await fetched;

    let serverCommitAt = 0;
    const off = server.group!.onCommit(() => {
      serverCommitAt = now();
    });
    const local: number[] = [];
    const toServer: number[] = [];
    const toB: number[] = [];
    const total = await profiled(ctx.profile, `propagation ${durability}`, () =>
      changeSamples(a, b, user, {
        samples: ctx.sizes.propagationSamples,
        warmup: ctx.sizes.propagationWarmup,
        onStart: () => (serverCommitAt = 0),
        onSample: (t0, t1, t2) => {
          local.push(t1 - t0);
          if (serverCommitAt > 0) {
            toServer.push(serverCommitAt - t0);
            toB.push(t2 - serverCommitAt);
          }
        },
      }),
    );
    off();
    const s = summarize(total);
    // The baselines: the raw round trip plus one fsync'ed put; with `os` durability, the raw round trip alone.
    const put = durability === 'fsync' ? ctx.base.fsyncPut.p50 : ctx.base.osPut.p50;
    const baseline = ctx.base.rtt.p50 + (durability === 'fsync' ? put : 0);
    const label = durability === 'fsync' ? 'ws RTT p50 + fsync put p50' : 'ws RTT p50';
    const section = `propagation A → server → B (${durability})`;
    ctx.rows.push(row({ section, figure: `p50 (${s.n} changes)`, value: s.p50, unit: 'ms', baseline: { value: baseline, unit: 'ms', label }, target: { on: 'ratio', limit: 2, text: '≤ 2× baseline' } }));
    ctx.rows.push(row({ section, figure: `p99 (${s.n} changes)`, value: s.p99, unit: 'ms', baseline: { value: baseline, unit: 'ms', label }, target: { on: 'ratio', limit: 4, text: '≤ 4× baseline' } }));
    const tail = ctx.base.rtt.p99 + (durability === 'fsync' ? ctx.base.fsyncPut.p99 : 0);
    ctx.rows.push(row({ section, figure: '  p99 against the baselines\' p99', value: s.p99, unit: 'ms', baseline: { value: tail, unit: 'ms', label: label.replaceAll('p50', 'p99') } }));
    // On the path: the server's change (fsync'ed with `fsync` durability), then B's applied delta, which
    // is never fsync'ed (the server holds it durably). A's own queue entry is written while it is sent.
    const floor = ctx.base.rtt.p50 + put + ctx.base.osPut.p50;
    const l = summarize(local);
    const u = summarize(toServer);
    const d = summarize(toB);
    ctx.notes.push(
      `propagation (${durability}) split, p50 / p99: setItem → server committed ${fmtMs(u.p50)} / ${fmtMs(u.p99)}; server commit → B item-changed ${fmtMs(d.p50)} / ${fmtMs(d.p99)}; ` +
        `A's own durable write (setItem resolves; written while the change is sent) ${fmtMs(l.p50)} / ${fmtMs(l.p99)}; mean ${fmtMs(s.mean)}, max ${fmtMs(s.max)}. ` +
        `The three agents share one event loop, one disk and ${cpus().length} CPU(s): each machine's JavaScript waits for the others', which separate MFPs do not (the disk is not the limit: with the clients' stores on tmpfs the p50 was the same). ` +
        `Writes on the path: the server's change (${durability}) and B's applied delta (no fsync); their floor is ws RTT p50 + put p50 + unsynced put p50 = ${fmtMs(floor)}, ` +
        `and the measured p50 is ${(s.p50 / floor).toFixed(1)}× that floor.`,
    );
  } finally {
    await scope.run();
  }
}
