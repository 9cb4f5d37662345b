/**
 * Figure 3 — join of 1,000 users with realistic records.
 *
 * Down: the server holds the users; a client holding a stale copy of the same users joins, and the
 * server's copy replaces its own (SPEC §3.1). Up: a client holding users the server lacks joins and
 * uploads them. Both are timed from `setRole('client', …)` to its resolution (joined and live), and
 * divided by the physical floor of the same bytes: a raw ws transfer of the frames the server (or the
 * client) sends, built with the real codec, plus one fsync'ed LevelDB batch of the records written.
 */
import type { Agent } from '../../agent/agent.js';
import { encodeMessage } from '../../protocol/codec.js';
import { PROTOCOL_VERSION } from '../../protocol/limits.js';
import { sessionCipher } from '../../protocol/secure.js';
import { chunk, SyncType, type SnapshotItem, type UploadEntity } from '../../protocol/sync.js';
import { entityKey } from '../../storage/catalog.js';
import { Keys } from '../../storage/keys.js';
import { encodedSize, encodeRecord, valueHash } from '../../storage/records.js';
import { joinAs, openAgent, openServer } from './agents.js';
import { channelPair } from './crypto.js';
import { levelBatchWrite, wsTransfer } from './baselines.js';
import type { Ctx } from './context.js';
import { profiled } from './profile.js';
import { userNames, userRecord } from './records.js';
import { row } from './report.js';
import { fmtBytes, fmtMs, median, now } from './stats.js';

const USERS_PER_BATCH = 50;

/** Writes the users straight into the server's group store (administrator writes, one batch per 50 users). */
export async function populateGroup(server: Agent, names: readonly string[], variant: number): Promise<void> {
  const group = server.group!;
  const by = `admin:${server.identity.deviceId}`;
  for (let i = 0; i < names.length; i += USERS_PER_BATCH) {
    const changes = names.slice(i, i + USERS_PER_BATCH).flatMap((u) =>
      Object.entries(userRecord(u, variant)).map(([n, val]) => ({ c: 0, e: entityKey('user', u), n, val, base: group.itemStates(entityKey('user', u))?.get(n)?.v ?? 0 })),
    );
    const { outcomes } = await group.applyChanges(by, changes);
    const bad = outcomes.find((o) => o.status !== 'applied');
    if (bad) throw new Error(`populating the server: ${JSON.stringify(bad)}`);
  }
}

/** Writes the users into a standalone agent's local store through `setItem` (group-committed). */
export async function populateLocal(agent: Agent, names: readonly string[], variant: number): Promise<void> {
  for (let i = 0; i < names.length; i += 100) {
    const writes: Promise<unknown>[] = [];
    for (const u of names.slice(i, i + 100)) for (const [n, val] of Object.entries(userRecord(u, variant))) writes.push(agent.setItem('user', u, n, val));
    await Promise.all(writes);
  }
}

/** The item records a store writes for these items, as LevelDB entries (the baseline's bytes). */
function itemEntries(items: readonly SnapshotItem[]): [string, Uint8Array][] {
  const at = Date.now();
  return items.map(([e, n, v, val]) => [Keys.item(e, n), encodeRecord({ v, h: valueHash(val), by: 'server', at, val })]);
}

/** Seals and opens every frame once, as the session does (ChaCha20-Poly1305, OpenSSL); returns ms. */
function sealOpen(frames: readonly Uint8Array[]): number {
  const { tx, rx } = channelPair();
  const t0 = now();
  for (const f of frames) rx.open(tx.seal(f));
  return now() - t0;
}

/** Median of three runs of a baseline: one run of a few milliseconds is at the mercy of a GC pause. */
async function median3(run: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push(await run());
  return median(times);
}

function totalBytes(frames: readonly Uint8Array[]): number {
  return frames.reduce((s, f) => s + f.length, 0);
}

/** Times one join, with the handshake (to the `joining` state) split off. */
export async function timedJoin(client: Agent, port: number): Promise<{ total: number; handshake: number }> {
  let joiningAt = 0;
  const onState = (e: { state: string }) => {
    if (e.state === 'joining' && joiningAt === 0) joiningAt = now();
  };
  client.on('sync-state', onState);
  const t0 = now();
  try {
    await joinAs(client, port);
  } finally {
    client.off('sync-state', onState);
  }
  const t1 = now();
  return { total: t1 - t0, handshake: joiningAt > 0 ? joiningAt - t0 : Number.NaN };
}

/** Figure 3, server → client direction. */
export async function joinDown(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  try {
    const names = userNames(ctx.sizes.users);
    const server = await openServer(scope, ctx.tmp, { name: 'join-s' });
    ctx.progress(`join: populating the server with ${names.length} users`);
    await populateGroup(server, names, 0);
    const client = await openAgent(scope, ctx.tmp, { name: 'join-c' });
    ctx.progress(`join: populating the client with a stale copy of ${names.length} users`);
    await populateLocal(client, names, 1);

    // What the server sends: the join plan and the snapshot, framed as the server frames them.
    const group = server.group!;
    const entities = names.map((u) => entityKey('user', u));
    const items: SnapshotItem[] = [];
    for (const e of entities) for (const [n, rec] of await group.readEntity(e)) items.push([e, n, rec.v, rec.val]);
    const parts = chunk(items, (i) => 32 + encodedSize(i[3]));
    const frames = [
      encodeMessage({ type: SyncType.JoinPlan, upload: [], replace: entities }),
      ...parts.map((part, i) => encodeMessage({
        type: SyncType.Snapshot, reason: 'join', items: part, replace: i === 0 ? entities : [], deletes: [], versions: [],
        copies: [], final: i === parts.length - 1, seq: group.seq,
      })),
    ];

    ctx.progress('join: stale client joins');
    const { total, handshake } = await profiled(ctx.profile, 'join down', () => timedJoin(client, server.port));

    // The server's copy must have won: a figure of a join that did not happen would be worthless.
    const probe = names[names.length >> 1]!;
    const mine = (await client.getItems('user', probe, 'address-list')).items['address-list']!.value;
    const theirs = (await group.readItem(entityKey('user', probe), 'address-list'))?.val;
    const won = JSON.stringify(mine) === JSON.stringify(theirs);
    const conflicts = (await client.conflicts()).length;

    const { bytes } = await reportJoin(ctx, scope, 'down', { users: names.length, frames, items, total, handshake });
    ctx.notes.push(
      `join down: handshake (connect, admission with scrypt, welcome) ${fmtMs(handshake)} of ${fmtMs(total)}; ${items.length} items in ${frames.length} frames (${fmtBytes(bytes)}); ` +
        `server copy won: ${won ? 'yes' : 'NO — the client kept its own data'}; the client logged ${conflicts} replaced values in its conflict log ` +
        `(a second copy of the replaced data, which the baseline does not write).`,
    );
  } finally {
    await scope.run();
  }
}

/** Measures the physical floor of a join's bytes (raw transfer + one fsync'ed batch) and reports the figure. */
async function reportJoin(
  ctx: Ctx,
  scope: Parameters<typeof wsTransfer>[0],
  direction: 'down' | 'up',
  o: { users: number; frames: Uint8Array[]; items: SnapshotItem[]; total: number; handshake: number },
): Promise<{ bytes: number }> {
  const transfer = await median3(() => wsTransfer(scope, o.frames, direction));
  const entries = itemEntries(o.items);
  const write = await median3(() => levelBatchWrite(scope, ctx.tmp, entries));
  const crypt = await median3(async () => sealOpen(o.frames));
  const bytes = totalBytes(o.frames);
  const written = entries.reduce((sum, [, v]) => sum + v.length, 0);
  const section = direction === 'down' ? `join of ${o.users} users (server copy replaces a stale one)` : `join of ${o.users} users (client uploads users the server lacks)`;
  const baseline = { value: transfer + write, unit: 'ms' as const, label: 'ws transfer + fsync batch of same bytes' };
  ctx.rows.push(row({ section, figure: 'setRole(client) → joined and live', value: o.total, unit: 'ms', baseline }));
  ctx.rows.push(row({ section, figure: '  join proper (after the handshake)', value: o.total - o.handshake, unit: 'ms', baseline: { ...baseline, label: 'same' } }));
  ctx.rows.push(row({
    section,
    figure: '  join proper, against the floor with the session encryption',
    value: o.total - o.handshake,
    unit: 'ms',
    baseline: { value: transfer + write + crypt, unit: 'ms', label: 'same + seal and open of the frames' },
    target: { on: 'ratio', limit: 3, text: '≤ 3× floor' },
  }));
  ctx.baselineLines.push({
    name: `join ${direction}: ${fmtBytes(bytes)} in ${o.frames.length} frames (median of 3)`,
    text:
      `ws transfer ${fmtMs(transfer)}; LevelDB batch of ${entries.length} records (${fmtBytes(written)}), fsync: ${fmtMs(write)} (${(written / 1048576 / (write / 1000)).toFixed(1)} MB/s); ` +
      `${sessionCipher(PROTOCOL_VERSION)} seal + open of the frames ${fmtMs(crypt)} (${(bytes / 1048576 / (crypt / 1000)).toFixed(1)} MB/s)`,
    values: { bytes, frames: o.frames.length, transferMs: transfer, writeMs: write, records: entries.length, sealOpenMs: crypt },
  });
  return { bytes };
}

/** Figure 3, client → server direction (upload of users the server lacks). */
export async function joinUp(ctx: Ctx): Promise<void> {
  const scope = ctx.cleanup.scope();
  try {
    const names = userNames(ctx.sizes.users, 'v');
    const server = await openServer(scope, ctx.tmp, { name: 'up-s' });
    const client = await openAgent(scope, ctx.tmp, { name: 'up-c' });
    ctx.progress(`join: populating a client with ${names.length} users the server lacks`);
    await populateLocal(client, names, 2);

    // What the client sends: its offer and the uploads, framed as the client frames them.
    const uploads: UploadEntity[] = [];
    const items: SnapshotItem[] = [];
    for (const u of names) {
      const e = entityKey('user', u);
      const rec: Record<string, unknown> = {};
      for (const [n, r] of await client.local.readEntity(e)) {
        rec[n] = r.val;
        items.push([e, n, 1, r.val]);
      }
      uploads.push({ e, items: rec });
    }
    const parts = chunk(uploads, (u) => 64 + encodedSize(u.items));
    const frames = [
      encodeMessage({ type: SyncType.JoinOffer, entities: uploads.map((u) => [u.e, client.local.entityHash(u.e)!]) }),
      ...parts.map((part, i) => encodeMessage({ type: SyncType.Upload, entities: part, final: i === parts.length - 1 })),
    ];

    ctx.progress('join: client uploads');
    const { total, handshake } = await profiled(ctx.profile, 'join up', () => timedJoin(client, server.port));
    const held = server.group!.users().length;

    const { bytes } = await reportJoin(ctx, scope, 'up', { users: names.length, frames, items, total, handshake });
    ctx.notes.push(`join up: handshake ${fmtMs(handshake)} of ${fmtMs(total)}; ${items.length} items in ${frames.length} frames (${fmtBytes(bytes)}); the server holds ${held} users afterwards (expected ${names.length}).`);
  } finally {
    await scope.run();
  }
}
