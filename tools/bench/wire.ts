/**
 * Figure 4 — bytes on the wire for a one-item change. Client A and client B each reach the server
 * through a byte-counting FaultProxy. One `setItem` on A; when B has applied it and A has its
 * acknowledgement (both awaited as events), the proxies' counters give the change frame (A up), the
 * ack (A down) and the delta (B down), WebSocket framing included, against the item's encoded size.
 */
import { encodedSize } from '../../storage/records.js';
import { FaultProxy } from '../proxy.js';
import { joinAs, nextAck, openAgent, openServer, remoteChange } from './agents.js';
import type { Ctx } from './context.js';
import { userRecord } from './records.js';
import { row } from './report.js';

/** Runs figure 4. */
export async function wire(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  try {
    const server = await openServer(scope, ctx.tmp, { name: 'wire-s' });
    const proxyA = await FaultProxy.start({ targetPort: server.port });
    scope.defer('proxy A', () => proxyA.close());
    const proxyB = await FaultProxy.start({ targetPort: server.port });
    scope.defer('proxy B', () => proxyB.close());
    const a = await openAgent(scope, ctx.tmp, { name: 'wire-a' });
    const b = await openAgent(scope, ctx.tmp, { name: 'wire-b' });
    await joinAs(a, proxyA.port);
    await joinAs(b, proxyB.port);
    const user = 'wire-user';
    const rec = userRecord(user, 3);
    for (const item of ['language', 'job-defaults']) {
      const acked = nextAck(a);
      await a.setItem('user', user, item, rec[item]);
      await acked;
    }
    const fetched = Promise.all([remoteChange(b, user, 'language'), remoteChange(b, user, 'job-defaults')]);
    await b.login(user);
    await fetched;

    const cases: { item: string; value: unknown; label: string }[] = [
      { item: 'language', value: { display: 'de', keyboard: 'de-DE' }, label: 'language (small)' },
      { item: 'job-defaults', value: userRecord(user, 4)['job-defaults'], label: 'job-defaults (~30 fields)' },
    ];
    // The server tells A, debounced (250 ms), that its cursor moved past A's own change: let every such
    // notice pass before a window opens, and count the one a measured change causes on its own.
    const settle = () => new Promise((r) => setTimeout(r, 600));
    for (const c of cases) {
      let measured = { up: 0, down: 0, bDown: 0, bUp: 0, notice: 0 };
      // One warm-up change first, so no first-use frame (hold, cursor) is counted.
      for (const warm of [true, false]) {
        await settle();
        const arrived = remoteChange(b, user, c.item);
        const acked = nextAck(a);
        const before = { up: proxyA.bytes.up, down: proxyA.bytes.down, bDown: proxyB.bytes.down, bUp: proxyB.bytes.up };
        const value = warm ? c.value : { ...(c.value as object), edited: true };
        await a.setItem('user', user, c.item, value);
        await arrived;
        await acked;
        const down = proxyA.bytes.down;
        measured = { up: proxyA.bytes.up - before.up, down: down - before.down, bDown: proxyB.bytes.down - before.bDown, bUp: proxyB.bytes.up - before.bUp, notice: 0 };
        await settle();
        measured.notice = proxyA.bytes.down - down;
        if (!warm) {
          const size = encodedSize(value);
          const section = `bytes on the wire, one change of ${c.label}, item ${size} B encoded`;
          const base = { value: size, unit: 'bytes' as const, label: 'item encoded size' };
          ctx.rows.push(row({ section, figure: 'A → server: change frame', value: measured.up, unit: 'bytes', baseline: base, target: { on: 'value', limit: size + 64, text: `≤ item + 64 B (${size + 64} B)` } }));
          ctx.rows.push(row({ section, figure: 'server → A: ack', value: measured.down, unit: 'bytes', baseline: base, target: { on: 'value', limit: 64, text: '≤ 64 B (no value)' } }));
          ctx.rows.push(row({ section, figure: 'server → A: later cursor notice', value: measured.notice, unit: 'bytes' }));
          ctx.rows.push(row({ section, figure: 'server → B: delta', value: measured.bDown, unit: 'bytes', baseline: base, target: { on: 'value', limit: size + 64, text: `≤ item + 64 B (${size + 64} B)` } }));
          if (measured.bUp !== 0) ctx.notes.push(`wire: B sent ${measured.bUp} B while applying a delta of ${c.item} (expected nothing).`);
        }
      }
    }
    ctx.notes.push(
      'wire: sizes include WebSocket framing (client → server frames carry a 4-byte mask; payloads of 126 B or more a 2-byte extended length). ' +
        'The cursor notice is the debounced empty `deltas` frame telling A that its cursor moved past its own change (sent ~250 ms later). ' +
        'The job-defaults delta is smaller than the item: the group copy has its send destinations blanked (SPEC §2).',
    );
  } finally {
    await scope.run();
  }
}
