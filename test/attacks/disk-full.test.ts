/**
 * Attack: fill the disk under a running agent, then free it. The attacker (or just a busy machine) fills
 * the small file system holding an agent's data directory — here a real 3 MB tmpfs and a filler file —
 * until the agent's store cannot write (`STORE_WRITE_FAILED`, health red), frees the space, makes new
 * changes that are acknowledged, and restarts the agent with SIGTERM or SIGKILL. What must hold: every
 * change acknowledged after the space came back is there after the restart — its version, `user get`,
 * the server's `status` sequence — on a server (its group store) and on a client (its local store and
 * its durable outbound queue, whose changes reach the server later), with `run --durability fsync` and
 * `os`. Before the fix LevelDB kept appending after the record the full disk had cut short, and the next
 * open dropped everything after it: sequence 27 → 22, `NOT_FOUND`, health green.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { AgentProcess, freePort, joinClient, startServer } from '../helpers/agents.js';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.js';

const TMPFS_BYTES = 3 * 1024 * 1024;
/**
 * A value bigger than a page, so the write cannot fit in what is left of the log's last page: an open
 * field of `home` (its schema keeps unknown fields), so the schema accepts it and only the disk refuses.
 */
const BIG = JSON.stringify({ wallpaper: 'plain', note: 'x'.repeat(96 * 1024) });

interface Status {
  health: string;
  healthReasons: { code: string }[];
  group?: { seq: number };
  client?: { queued: number; state: string };
}

type Items = Record<string, { value: unknown; version: number; set: boolean }>;

/** The full disk as the technician sees it: a refused change, and red health naming the store failure. */
async function refusedWhileFull(t: ExecutionContext, agent: AgentProcess, user: string): Promise<void> {
  const r = await agent.sh('user', 'set', user, 'home', BIG);
  t.not(r.code, 0, 'a write on a full disk must fail');
  t.regex(r.stderr, /STORE_WRITE_FAILED/);
  const status = await agent.ok<Status>('status');
  t.is(status.health, 'red');
  t.true(status.healthReasons.some((x) => x.code === 'STORE_WRITE_FAILED'), JSON.stringify(status.healthReasons));
}

const ITEMS = ['language', 'home', 'address-list'] as const;
const valueOf = (item: (typeof ITEMS)[number], tag: string): string =>
  item === 'language' ? JSON.stringify({ display: tag, keyboard: 'en-US' }) : item === 'home' ? JSON.stringify({ wallpaper: tag }) : JSON.stringify([{ name: tag, email: `${tag}@example.com` }]);

for (const durability of ['fsync', 'os'] as const) {
  test(`server (${durability}): changes acknowledged after a full disk is freed survive SIGTERM and SIGKILL`, async (t) => {
    const mount = await mountTmpfs(t, TMPFS_BYTES);
    if (!mount) return;
    const { server } = await startServer(t, { dataDir: join(mount, 'd'), runArgs: ['--durability', durability] });
    await server.control('item.set', { kind: 'user', id: 'before', item: 'language', value: JSON.parse(valueOf('language', 'before')) });
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const filler = await fillUp(mount);
      await refusedWhileFull(t, server, `lost-${signal}`);
      await unlink(filler);
      const user = `after-${signal}`;
      const versions: Record<string, number> = {};
      // Bulk writes through the control socket (the shell's own path is what `refusedWhileFull` drives).
      for (const item of ITEMS) versions[item] = (await server.control<{ version: number }>('item.set', { kind: 'user', id: user, item, value: JSON.parse(valueOf(item, user)) })).version;
      const before = await server.control<Status>('status');
      t.is(before.health, 'green', JSON.stringify(before.healthReasons));
      t.is(before.group!.seq, versions['address-list']);

      await server.kill(signal);
      await server.start();
      const after = await server.ok<Status>('status');
      t.is(after.group!.seq, before.group!.seq, `${signal}: the sequence number went back`);
      const { items } = await server.ok<{ items: Items }>('user', 'get', user);
      for (const item of ITEMS) t.like(items[item], { set: true, version: versions[item], value: JSON.parse(valueOf(item, user)) }, `${signal}: ${item} lost`);
    }
    t.like((await server.control<{ items: Items }>('item.get', { kind: 'user', id: 'before' })).items.language, { set: true });
  });

  test(`client (${durability}): local and queued changes made after a full disk is freed survive SIGTERM and SIGKILL and reach the server`, async (t) => {
    const mount = await mountTmpfs(t, TMPFS_BYTES);
    if (!mount) return;
    const port = await freePort();
    const { server } = await startServer(t, { port, runArgs: ['--durability', durability] });
    const client = await AgentProcess.spawn(t, { name: 'client', dataDir: join(mount, 'd'), runArgs: ['--durability', durability] });
    await joinClient(client, port);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const filler = await fillUp(mount);
      await refusedWhileFull(t, client, `lost-${signal}`);
      await unlink(filler);
      // One change the server acknowledges, then the server goes away: the rest wait in the queue.
      const online = `online-${signal}`;
      const since = client.events.length;
      const { change } = await client.control<{ change: number }>('item.set', { kind: 'user', id: online, item: 'language', value: JSON.parse(valueOf('language', online)) });
      await client.waitFor((e) => e.event === 'changes-acked' && (e.changes as { c: number }[]).some((x) => x.c === change), 15_000, since);
      await server.kill('SIGKILL');
      const user = `queued-${signal}`;
      for (const item of ITEMS) await client.control('item.set', { kind: 'user', id: user, item, value: JSON.parse(valueOf(item, user)) });
      const before = await client.control<Status>('status');
      t.is(before.client!.queued, ITEMS.length);
      t.false(before.healthReasons.some((x) => x.code === 'STORE_WRITE_FAILED'), JSON.stringify(before.healthReasons));

      // The client restarts with its server back: only its durable queue can carry the changes there.
      await client.kill(signal);
      await server.start();
      await client.start();
      const got = (await client.ok<{ items: Items }>('user', 'get', user)).items;
      for (const item of ITEMS) t.like(got[item], { set: true, value: JSON.parse(valueOf(item, user)) }, `${signal}: ${item} lost on the client`);
      t.like((await client.control<{ items: Items }>('item.get', { kind: 'user', id: online })).items.language, { set: true }, `${signal}: ${online} lost on the client`);
      await client.waitFor((e) => e.event === 'changes-acked' && e.queued === 0, 15_000);
      for (const [u, items] of [[online, ['language']], [user, ITEMS]] as const) {
        const held = (await server.control<{ items: Items }>('item.get', { kind: 'user', id: u })).items;
        for (const item of items) t.like(held[item], { set: true, value: JSON.parse(valueOf(item, u)) }, `${signal}: ${u} ${item} never reached the server`);
      }
    }
  });
}
