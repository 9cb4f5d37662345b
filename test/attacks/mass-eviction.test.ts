/**
 * Mass eviction. Past the 1,000-user bound the server deletes the least recently used user, group-wide
 * (SPEC §2): one admitted machine creating 10,000 new users in a burst used to delete every real user in
 * seconds, and every client then deleted its copies. The attacker here is an admitted member — a
 * scripted device with the administrator password — that uploads 4,000 new users at its join and then
 * sends 6,240 more as live changes, against a real server process whose real users two real clients
 * use. What must hold: no user used within the last day is deleted to make room (the real users and
 * the clients' copies survive); the excess is refused (USER_LIMIT_REACHED on each live change, uploads
 * neither created nor skipped); the sync log has the Error naming the device; health is red naming it,
 * until an administrator makes room. The normal eviction at a normal pace (the least recently used
 * user, unused for a day, goes) is tested in test/agent/sync.test.ts and the store suite.
 */
import test from 'ava';
import { AckStatus } from '../../protocol/sync.js';
import { AgentProcess, joinClient, startServer } from '../helpers/agents.js';
import { RawPeer } from '../helpers/raw-peer.js';

const admission = { user: 'admin', password: 'secret-pw' };
const UPLOADED = 4000;
const PER_FRAME = 512;
const LIVE = 6240;

interface Status {
  health: string;
  healthReasons: { level: string; code: string; message: string }[];
  group: { users: number };
}

test('one member creating 10,240 users in a burst deletes no user used within the day: the excess is refused, logged and red', async (t) => {
  const { server, port } = await startServer(t);
  const [a, b] = await Promise.all(['A', 'B'].map((name) => AgentProcess.spawn(t, { name })));
  await Promise.all([joinClient(a, port), joinClient(b, port)]);
  const acked = (e: { event: string; queued?: unknown }) => e.event === 'changes-acked' && e.queued === 0;
  let mark = a.events.length;
  await a.ok('user', 'set', 'ann', 'language', '{"display":"fr","keyboard":"fr-FR"}');
  await a.ok('user', 'set', 'bob', 'home', '{"wallpaper":"blue"}');
  await a.waitFor(acked, 15_000, mark);
  mark = b.events.length;
  await b.ok('login', 'ann');
  await b.waitRemote('ann', 'language', mark);
  const bMark = b.events.length;
  const aMark = a.events.length;

  // The burst: 4,000 new users uploaded at the attacker's join…
  const attacker = await RawPeer.connect({ port, localAddress: '127.0.0.2', hello: { admission, name: 'rogue' } });
  const names = Array.from({ length: UPLOADED }, (_, i) => `u:flood-${i}`);
  attacker.send({ type: 'join-offer', entities: names.map((e) => [e, 'x']) });
  const plan = await attacker.receive('join-plan');
  t.is(plan.upload.length, UPLOADED);
  let created = 0;
  let skipped = 0;
  for (let i = 0; i < UPLOADED; i += 500) {
    const part = names.slice(i, i + 500).map((e) => ({ e, items: { home: { tiles: 1 } } }));
    attacker.send({ type: 'upload', entities: part, final: i + 500 >= UPLOADED });
    const ack = await attacker.receive('upload-ack');
    created += ack.created.length;
    skipped += ack.skipped.length;
  }
  await attacker.receive('snapshot');
  // …then 6,240 more as live changes.
  const codes = new Map<string, number>();
  let c = 1;
  for (let sent = 0; sent < LIVE; sent += PER_FRAME) {
    const n = Math.min(PER_FRAME, LIVE - sent);
    attacker.send({ type: 'changes', list: Array.from({ length: n }, (_, i) => [c + i, `u:live-${sent + i}`, 'home', 0, { tiles: 2 }] as [number, string, string, number, unknown]) });
    c += n;
    for (const [, status, , why] of (await attacker.receive('ack')).list) {
      const code = status === AckStatus.Rejected ? (why as [string, string])[0] : status === AckStatus.Applied ? 'applied' : `status ${status}`;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  }
  t.log(`upload: ${created} created, ${skipped} skipped, ${UPLOADED - created - skipped} refused; live: ${JSON.stringify(Object.fromEntries(codes))}`);
  t.is(created, 998, 'the uploads filled the free places (1,000 less the two real users), no more');
  t.is(skipped, 0);
  t.deepEqual(Object.fromEntries(codes), { USER_LIMIT_REACHED: LIVE }, 'every live newcomer beyond the bound was refused with its code');

  // The real users survive on the server and on both clients, with their data.
  const { users } = await server.ok<{ users: { id: string }[] }>('users', 'list');
  t.deepEqual(users.map((u) => u.id).filter((u) => !u.startsWith('flood-')).sort(), ['ann', 'bob']);
  t.deepEqual(await server.value('user', 'ann', 'language'), { display: 'fr', keyboard: 'fr-FR' });
  t.deepEqual(await a.value('user', 'bob', 'home'), { wallpaper: 'blue' });
  t.deepEqual(await b.value('user', 'ann', 'language'), { display: 'fr', keyboard: 'fr-FR' });
  t.false([...a.events.slice(aMark), ...b.events.slice(bMark)].some((e) => e.event === 'entity-deleted'), 'a client deleted a copy');
  const status = await server.ok<Status>('status');
  t.is(status.group.users, 1000);

  // The sync log has the Error naming the device; health is red naming it.
  const errors = await server.ok<{ entries: { code: string; message: string; deviceId?: string }[] }>('log', '--level', 'error');
  const limit = errors.entries.filter((e) => e.code === 'USER_LIMIT_REACHED');
  t.true(limit.length > 0 && limit.every((e) => e.deviceId === attacker.identity.deviceId && e.message.includes('rogue')));
  t.true(limit.length <= 1 + Math.ceil(UPLOADED / 500) + Math.ceil(LIVE / PER_FRAME), `${limit.length} entries: one per frame at most`);
  t.false(errors.entries.some((e) => e.code === 'USER_LIMIT_EXCEEDED'), 'a user was deleted to make room');
  t.is(status.health, 'red');
  const reason = status.healthReasons.find((r) => r.code === 'USER_LIMIT_REACHED');
  t.truthy(reason);
  t.true(reason!.level === 'red' && reason!.message.includes(attacker.identity.deviceId) && reason!.message.includes('rogue'), reason!.message);
  await attacker.close();

  // The administrator removes the device and deletes what it created: room again, health no longer red for it.
  await server.ok('devices', 'remove', attacker.identity.deviceId);
  await server.ok('users', 'delete', '--search', 'flood-', '--yes');
  const after = await server.ok<Status>('status');
  t.false(after.healthReasons.some((r) => r.code === 'USER_LIMIT_REACHED'));
  t.is(after.group.users, 2);
  // And the group takes new users again.
  mark = a.events.length;
  await a.ok('user', 'set', 'cem', 'home', '{}');
  await a.waitFor(acked, 15_000, mark);
  t.deepEqual((await server.ok<{ users: { id: string }[] }>('users', 'list')).users.map((u) => u.id).sort(), ['ann', 'bob', 'cem']);
});
