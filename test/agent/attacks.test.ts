/**
 * The attack table (SPEC §6), each through real sockets against a real server (in-process agent, real
 * LevelDB): every attack is refused with its code, and the group's store is left as it was.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import nacl from 'tweetnacl';
import { WebSocket } from 'ws';
import type { Agent } from '../../agent/agent.js';
import { ManualClock } from '../../agent/clock.js';
import { decodeMessage, decodeValue, encodeMessage, encodeValue } from '../../protocol/codec.js';
import { MfpError } from '../../protocol/errors.js';
import { capabilitiesFor } from '../../storage/catalog.js';
import { GroupStore } from '../../storage/group-store.js';
import { LevelKv } from '../../storage/level-kv.js';
import { freePort } from '../helpers/agents.js';
import { admit, openAgent, openServer, syncState } from '../helpers/inprocess.js';
import { rng } from '../../tools/bench/records.js';
import { Mitm } from '../helpers/mitm.js';
import { MESSAGES } from '../protocol/fixtures.js';

/** What the group store holds, to compare before and after an attack. */
function fingerprint(server: Agent) {
  const g = server.group!;
  return { seq: g.seq, devices: g.devices().map((d) => d.id).sort(), users: g.users().map((u) => u.name).sort() };
}

async function serverWithClient(t: ExecutionContext, options: Parameters<typeof openAgent>[2] = {}) {
  const server = await openAgent(t, 'server', options);
  await server.setRole('server');
  const mitm = await Mitm.start(server.port);
  t.teardown(() => mitm.close());
  const client = await openAgent(t, 'client');
  await client.setItem('user', 'ann', 'home', { n: 0 });
  await admit(client, mitm.port);
  return { server, client, mitm };
}

/** Opens a raw WebSocket, waits for the challenge, then runs `act`; resolves with what came back and the close code. */
function raw(port: number, act: (ws: WebSocket, challenge: Buffer) => void): Promise<{ frames: Buffer[]; code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    const frames: Buffer[] = [];
    ws.on('message', (data: Buffer) => {
      frames.push(data);
      if (frames.length === 1) act(ws, data);
    });
    ws.on('close', (code) => resolve({ frames, code }));
    ws.on('error', reject);
  });
}

function refusal(frame: Buffer | undefined): string | undefined {
  if (!frame) return undefined;
  const m = decodeMessage(frame);
  return m.type === 'refuse' ? m.code : `(${m.type})`;
}

/** A change made after the attack is armed, and the up-frame index it will travel in. */
async function change(client: Agent, mitm: Mitm, n: number): Promise<void> {
  await client.setItem('user', 'ann', 'home', { n });
  void mitm;
}

test('unknown device without the administrator account: AUTH_INCORRECT', async (t) => {
  const server = await openServer(t);
  const before = fingerprint(server);
  const intruder = await openAgent(t, 'intruder');
  // The agent's own `role set client` refuses without credentials, so talk to the server directly.
  const client = await intruder.createClient({ host: '127.0.0.1', port: server.port });
  const err = await t.throwsAsync(client.admit(undefined));
  t.is((err as MfpError).code, 'AUTH_INCORRECT');
  t.regex(err!.message, /first connection needs the administrator account/);
  t.deepEqual(fingerprint(server), before);
});

test('replayed handshake: a recorded hello does not open another session', async (t) => {
  const { server, mitm } = await serverWithClient(t);
  const hello = (await mitm.link(0)).up[0]!;
  const before = fingerprint(server);
  const { frames } = await raw(server.port, (ws) => ws.send(hello));
  t.is(refusal(frames[1]), 'AUTH_INCORRECT');
  t.deepEqual(fingerprint(server), before);
});

test('replayed frame: the copy fails authentication, the change applies once', async (t) => {
  const { server, client, mitm } = await serverWithClient(t);
  const seq = server.group!.seq;
  mitm.up = (f) => [f, f];
  const cut = syncState(client, 'offline');
  await change(client, mitm, 1);
  t.is((await cut).code, 'FRAME_TAMPERED');
  const tampered = (await server.syncLog('warning')).filter((e) => e.code === 'FRAME_TAMPERED');
  t.is(tampered.length, 1);
  mitm.up = (f) => [f];
  await syncState(client, 'live');
  t.true(server.group!.seq <= seq + 1, 'applied at most once');
  t.is(client.client!.lastError, undefined);
});

test('reordered frames fail authentication and apply nothing', async (t) => {
  const { server, client, mitm } = await serverWithClient(t);
  const before = fingerprint(server);
  let held: Buffer | undefined;
  mitm.up = (f) => {
    if (!held) {
      held = f;
      return [];
    }
    mitm.up = (g) => [g];
    return [f, held];
  };
  const cut = syncState(client, 'offline');
  await change(client, mitm, 1);
  // A heartbeat or the next change is the second frame; send one now.
  client.client!.kick();
  await client.setItem('user', 'ann', 'home', { n: 2 });
  t.is((await cut).code, 'FRAME_TAMPERED');
  t.deepEqual(fingerprint(server), before);
});

for (const [name, alter] of [
  ['a flipped bit', (f: Buffer) => { const g = Buffer.from(f); g[g.length >> 1]! ^= 0x10; return g; }],
  ['a truncated frame', (f: Buffer) => f.subarray(0, f.length - 5)],
  ['a frame cut to less than its tag', (f: Buffer) => f.subarray(0, 10)],
] as const) {
  test(`${name} fails authentication and applies nothing`, async (t) => {
    const { server, client, mitm } = await serverWithClient(t);
    const before = fingerprint(server);
    mitm.up = (f) => {
      mitm.up = (g) => [g];
      return [alter(f)];
    };
    const cut = syncState(client, 'offline');
    await change(client, mitm, 1);
    t.is((await cut).code, 'FRAME_TAMPERED');
    t.deepEqual(fingerprint(server), before);
    t.true((await server.syncLog('warning')).some((e) => e.code === 'FRAME_TAMPERED'));
  });
}

test('downgrade by a man in the middle: an altered challenge or hello is detected', async (t) => {
  const server = await openServer(t);
  const mitm = await Mitm.start(server.port);
  t.teardown(() => mitm.close());
  const before = fingerprint(server);
  // The challenge rewritten to offer protocol 1 only: the client's signature covers the challenge it
  // saw, so the server refuses the hello (and the client would refuse the welcome).
  mitm.down = (f, i) => {
    if (i !== 0) return [f];
    const m = decodeValue(f) as Record<string, unknown>;
    return [Buffer.from(encodeValue({ ...m, protocol: 1, minProtocol: 1 }))];
  };
  const a = await openAgent(t, 'a');
  const e1 = await t.throwsAsync(admit(a, mitm.port));
  t.is((e1 as MfpError).code, 'AUTH_INCORRECT');
  t.regex(e1!.message, /signature does not verify/);
  // The hello rewritten to claim protocol 1 (no keychain): the server refuses it.
  mitm.down = (f) => [f];
  mitm.up = (f, i) => {
    if (i !== 0) return [f];
    const m = decodeValue(f) as { type: string; body: Uint8Array; sig: Uint8Array };
    const body = decodeValue(m.body) as Record<string, unknown>;
    const downgraded = encodeValue({ ...body, protocol: 1, capabilities: capabilitiesFor(1) });
    return [Buffer.from(encodeMessage({ type: 'hello', body: downgraded, sig: m.sig }))];
  };
  const b = await openAgent(t, 'b');
  const e2 = await t.throwsAsync(admit(b, mitm.port));
  t.is((e2 as MfpError).code, 'AUTH_INCORRECT');
  t.deepEqual(fingerprint(server), before);
});

test('oversized frames: refused by ws before buffering, before and after authentication', async (t) => {
  const { server, client, mitm } = await serverWithClient(t);
  const before = fingerprint(server);
  const pre = await raw(server.port, (ws) => ws.send(Buffer.alloc(20_000, 0x90)));
  t.is(pre.code, 1009, 'message too big, before authentication (limit 8 KiB)');
  const link = await mitm.link(0);
  const cut = syncState(client, 'offline');
  mitm.inject(link, randomBytes(2 * 1024 * 1024));
  await cut;
  t.deepEqual(fingerprint(server), before);
  t.true((await server.syncLog('warning')).some((e) => e.code === 'FRAME_TOO_LARGE'));
});

test('slow-loris: a stalled upgrade and a silent WebSocket are both cut', async (t) => {
  const server = await openAgent(t, 'server', { handshakeTimeoutMs: 800 });
  await server.setRole('server');
  // HTTP headers that never finish.
  const socket = connect(server.port, '127.0.0.1');
  socket.on('error', () => undefined);
  let answer = '';
  socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
  socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  t.regex(answer, /^HTTP\/1\.1 408 /, 'the server timed the stalled upgrade out and closed it');
  // An upgraded socket that never says hello.
  const { frames } = await raw(server.port, () => undefined);
  t.is(refusal(frames[1]), 'HANDSHAKE_TIMEOUT');
});

test('failed administrator logins are rate limited per source and account, across a restart', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const port = await freePort();
  let server = await openAgent(t, 'server', { clock, port });
  await server.setRole('server');
  const dataDir = server.dataDir;
  const a = await openAgent(t, 'a', { clock });
  for (let i = 0; i < 5; i++) {
    const err = await t.throwsAsync(admit(a, port, 'wrong'));
    t.is((err as MfpError).code, 'AUTH_INCORRECT', `attempt ${i + 1}`);
  }
  // Locked now: even the right password is refused, unchecked.
  const locked = await t.throwsAsync(admit(a, port, 'pw'));
  t.is((locked as MfpError).code, 'AUTH_LOCKED');
  t.regex(locked!.message, /retry after 2026-06-01T00:01:00/);
  // The counter survives a restart of the server.
  await server.close();
  server = await openAgent(t, 'server2', { clock, port, dataDir });
  const still = await t.throwsAsync(admit(a, port, 'pw'));
  t.is((still as MfpError).code, 'AUTH_LOCKED');
  // Another machine from the same address is locked too (per source), and so is the account.
  const b = await openAgent(t, 'b', { clock });
  t.is(((await t.throwsAsync(admit(b, port, 'pw'))) as MfpError).code, 'AUTH_LOCKED');
  clock.advance(61_000);
  await admit(a, port, 'pw');
  t.is(a.client!.state, 'live');
  t.true((await server.syncLog('warning')).some((e) => e.code === 'AUTH_LOCKED'));
});

test('different authentication settings: AUTH_SETTINGS_MISMATCH names the setting', async (t) => {
  const server = await openServer(t);
  const before = fingerprint(server);
  const a = await openAgent(t, 'a', { init: { settings: { departmentIds: true } } });
  const err = await t.throwsAsync(admit(a, server.port));
  t.is((err as MfpError).code, 'AUTH_SETTINGS_MISMATCH');
  t.regex(err!.message, /Department ID management differs: server off, client on/);
  const b = await openAgent(t, 'b', { init: { settings: { loginService: 'ldap' } } });
  const err2 = await t.throwsAsync(admit(b, server.port));
  t.regex(err2!.message, /login service differs: server "user-authentication", client "ldap"/);
  t.deepEqual(fingerprint(server), before);
});

test('a server whose group key changed is refused by its pinned clients: GROUP_KEY_CHANGED', async (t) => {
  const port = await freePort();
  let server = await openAgent(t, 'server', { port });
  await server.setRole('server');
  const dataDir = server.dataDir;
  const client = await openAgent(t, 'client');
  await admit(client, port);
  const offline = syncState(client, 'offline');
  await server.close();
  await offline;
  // Same group id, another key: what a stranger posing as the server would present.
  const store = await GroupStore.open({ kv: new LevelKv(join(dataDir, 'group')) });
  const key = (await store.getMeta<{ groupId: string; secretKey: string }>('groupKey'))!;
  await store.setMeta({ groupKey: { groupId: key.groupId, secretKey: Buffer.from(nacl.sign.keyPair().secretKey).toString('base64') } });
  await store.close();
  const refused = syncState(client, 'refused', 30_000);
  server = await openAgent(t, 'server2', { port, dataDir });
  const err = await refused;
  t.is(err.code, 'GROUP_KEY_CHANGED');
  t.regex(err.message!, /role set client/);
  t.truthy(server);
});

test('a server that cannot prove it holds the administrator secret is refused at first admission', async (t) => {
  const server = await openAgent(t, 'fake', {
    init: { name: 'fake', adminPassword: 'pw' },
    dataDir: undefined,
  });
  await server.close();
  // The impostor knows how to check the client's proof (storedKey) but not the server key.
  const configPath = join(server.dataDir, 'config.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as { admin: { serverKey: string } };
  config.admin.serverKey = randomBytes(32).toString('base64');
  writeFileSync(configPath, JSON.stringify(config));
  const impostor = await openAgent(t, 'impostor', { dataDir: server.dataDir });
  await impostor.setRole('server');
  const a = await openAgent(t, 'a');
  const err = await t.throwsAsync(admit(a, impostor.port));
  t.is((err as MfpError).code, 'AUTH_INCORRECT');
  t.regex(err!.message, /could not prove it holds this group's administrator account/);
  t.is(a.role, 'standalone');
});

test('a value with a __proto__ key is refused before it is stored or sent', async (t) => {
  const a = await openAgent(t, 'a');
  const err = await t.throwsAsync(a.setItem('user', 'u', 'home', JSON.parse('{"ok":1,"__proto__":{"polluted":true}}')));
  t.is((err as MfpError).code, 'INVALID_ARGUMENT');
  t.regex(err!.message, /__proto__/);
  t.false(a.local.hasEntity('u:u'));
  t.is(({} as Record<string, unknown>).polluted, undefined);
});

test('fuzz over real sockets: 200 connections sending mutated frames leave the server serving and unchanged', async (t) => {
  const server = await openServer(t);
  const before = fingerprint(server);
  const fixtures = MESSAGES.map((m) => Buffer.from(encodeMessage(m)));
  const random = rng(0x2545f491);
  const rand = (n: number) => Math.floor(random() * n);
  const codes = new Map<string, number>();
  for (let batch = 0; batch < 10; batch++) {
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        raw(server.port, (ws) => {
          const f = Buffer.from(fixtures[rand(fixtures.length)]!);
          for (let k = 0; k < 1 + rand(4); k++) f[rand(f.length)] = rand(256);
          ws.send(rand(5) === 0 ? f.subarray(0, rand(f.length)) : f);
        }),
      ),
    );
    for (const r of results) {
      const code = refusal(r.frames[1]) ?? `close ${r.code}`;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  }
  t.false([...codes.keys()].some((c) => c.startsWith('(')), `no connection got further than a refusal: ${JSON.stringify([...codes])}`);
  t.deepEqual(fingerprint(server), before);
  const a = await openAgent(t, 'a');
  await admit(a, server.port);
  t.is(a.client!.state, 'live');
});
