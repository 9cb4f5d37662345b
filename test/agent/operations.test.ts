/**
 * The operation table (agent/operations.ts): its generated checkers (agent/operation-checks.gen.ts, by
 * `npm run gen`) are what TypeBox's compiler makes of agent/operation-schemas.ts today and decide as
 * TypeBox does; a wrong parameter is INVALID_ARGUMENT naming it; the control socket runs through it and
 * streams the agent's events to `events.subscribe`, dropping a subscriber that does not read.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { Value } from '@sinclair/typebox/value';
import { initDataDir } from '../../agent/config.js';
import { callControl, MAX_SUBSCRIBER_BACKLOG } from '../../agent/control.js';
import { startDaemon, type Daemon } from '../../agent/daemon.js';
import { createLogger } from '../../agent/logger.js';
import { OPERATION_SPECS } from '../../agent/operation-schemas.js';
import { checkParams, invoke, OPERATIONS, type OperationName } from '../../agent/operations.js';
import { MfpError } from '../../protocol/errors.js';
import { API_DOC_PATH, apiReference } from '../../tools/gen-api-doc.js';
import { OPERATION_CHECKS_PATH, operationChecksSource } from '../../tools/gen-operations.js';

/** The control methods agent/daemon.ts dispatched before the table: the shell's commands call them by these names. */
const CONTROL_METHODS = [
  'status', 'role.set', 'login', 'logout', 'item.get', 'item.set', 'users.list', 'users.delete', 'devices.list', 'devices.remove', 'export',
  'export.prepare', 'import', 'conflicts.list', 'sharing.list', 'sharing.set', 'replication.start', 'replication.stop', 'replication.status',
  'backup', 'restore', 'backup.log', 'recover', 'power.status', 'power.sleep', 'power.wake', 'settings.applyDuringLogin', 'log',
];

let daemon: Daemon;
let dir: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mfp-'));
  initDataDir(join(dir, 'd'), { adminPassword: 'pw', name: 'ops' });
  daemon = await startDaemon({ dataDir: join(dir, 'd'), host: '127.0.0.1', port: 0, durability: 'os', logger: createLogger({ level: 'silent' }) });
});

test.after.always(async () => {
  await daemon?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('agent/operation-checks.gen.ts is up to date with the schemas (else: npm run gen)', (t) => {
  t.is(readFileSync(OPERATION_CHECKS_PATH, 'utf8'), operationChecksSource());
});

test('docs/api.md, the local API reference, is up to date with the table (else: npm run gen)', (t) => {
  const doc = readFileSync(API_DOC_PATH, 'utf8');
  t.is(doc, apiReference());
  for (const op of OPERATIONS) t.true(doc.includes(`### \`${op.name}\``), op.name);
  t.regex(doc, /events\.subscribe/);
});

test('the table holds every control method the shell calls, once, with a summary and an object schema', (t) => {
  t.deepEqual(OPERATIONS.map((o) => o.name).sort(), [...CONTROL_METHODS].sort());
  for (const op of OPERATIONS) {
    t.true(op.summary.length > 10, op.name);
    t.is(op.params.type, 'object', op.name);
    t.false(op.errors.includes('INVALID_ARGUMENT'), `${op.name}: INVALID_ARGUMENT is every operation's, not listed`);
  }
});

test('the generated checkers decide as TypeBox does, on arbitrary parameters', (t) => {
  const names = Object.keys(OPERATION_SPECS) as OperationName[];
  const fields = fc.constantFrom('role', 'server', 'user', 'password', 'force', 'kind', 'id', 'item', 'value', 'search', 'checksums', 'users', 'groups', 'local',
    'filter', 'path', 'addressList', 'scope', 'to', 'interval', 'threshold', 'from', 'shareUser', 'confirm', 'level', 'other');
  const leaf = fc.oneof(
    fc.string({ maxLength: 8 }), fc.constantFrom('server', 'user', 'device', 'shared', 'warning', 'personal', '/tmp/x', '', 'x'.repeat(200)),
    fc.integer({ min: -2, max: 2_000_000 }), fc.double({ min: -1, max: 20_000, noNaN: true }), fc.boolean(), fc.constant(null),
    fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
  );
  let accepted = 0;
  fc.assert(
    fc.property(fc.constantFrom(...names), fc.dictionary(fields, leaf, { maxKeys: 4 }), (name, params) => {
      const schema = OPERATION_SPECS[name].params;
      const required: readonly string[] = schema.required ?? [];
      // `null` for an optional parameter is the same as leaving it out.
      const optional = (k: string) => Object.hasOwn(schema.properties, k) && !required.includes(k);
      const withoutNulls = Object.fromEntries(Object.entries(params).filter(([k, v]) => v !== null || !optional(k)));
      let ours: boolean;
      try {
        checkParams(name, params);
        ours = true;
      } catch (err) {
        if (!(err instanceof MfpError) || err.code !== 'INVALID_ARGUMENT' || !err.message.startsWith(`${name}: `)) return false;
        ours = false;
      }
      if (ours) accepted++;
      return ours === Value.Check(schema, withoutNulls);
    }),
    { numRuns: 4000, seed: Number(process.env.FUZZ_SEED ?? 1) },
  );
  t.true(accepted > 100, `some arbitrary parameters were accepted (${accepted}), so both answers were exercised`);
});

test('a wrong parameter is INVALID_ARGUMENT naming the parameter and what it must be', (t) => {
  const refused = (name: OperationName, params: unknown, message: RegExp) => {
    const err = t.throws(() => checkParams(name, params), { instanceOf: MfpError });
    t.is(err?.code, 'INVALID_ARGUMENT');
    t.regex(err?.message ?? '', message);
  };
  refused('users.list', { search: 5 }, /^users\.list: search must be a string of at most 256 characters$/);
  refused('role.set', {}, /^role\.set: role is required \(one of "standalone", "server", "server-client", "client", "replica"\)$/);
  refused('role.set', { role: 'boss' }, /^role\.set: role must be one of "standalone", "server"/);
  refused('export', { path: 'relative/file' }, /^export: path must be a string of 1 to 4096 characters, starting with "\/"$/);
  refused('replication.start', { to: 'h', user: 'a', password: 'b', interval: 0 }, /interval must be a number from 0\.01 to 10080$/);
  refused('replication.start', { to: 'h', user: 'a', password: 'b', threshold: 1.5 }, /threshold must be an integer from 1 to 1000000$/);
  refused('users.delete', { users: ['a', 7] }, /^users\.delete: users must be a list of at most 1000 entries, each a string of 1 to 128 characters$/);
  refused('status', { verbose: true }, /^status: unknown parameter "verbose"; it takes none$/);
  refused('log', { lvl: 'error' }, /^log: unknown parameter "lvl"; it takes level$/);
  refused('power.sleep', [], /^power\.sleep: the parameters must be an object$/);
  t.deepEqual(checkParams('users.list', { search: null, checksums: true }), { checksums: true });
  // item.set's value may be anything, null included, but must be given.
  t.deepEqual(checkParams('item.set', { kind: 'user', id: 'a', item: 'language', value: null }), { kind: 'user', id: 'a', item: 'language', value: null });
  refused('item.set', { kind: 'user', id: 'a', item: 'language' }, /^item\.set: value is required \(any JSON value\)$/);
});

test('invoke refuses an unknown operation by name, and runs a known one on its service', async (t) => {
  const err = await t.throwsAsync(invoke(daemon.agent, 'users.purge', {}), { instanceOf: MfpError });
  t.is(err?.code, 'INVALID_ARGUMENT');
  t.regex(err?.message ?? '', /^unknown operation "users\.purge"; one of status, role\.set, /);
  t.like(await invoke(daemon.agent, 'status', {}), { name: 'ops', role: 'standalone' });
  t.like(await invoke(daemon.agent, 'power.status', null), { role: 'standalone', asleep: false });
});

test('the control socket dispatches through the table: results, and coded refusals of bad parameters', async (t) => {
  const path = daemon.control.path;
  t.like(await callControl(path, 'status'), { name: 'ops', role: 'standalone' });
  await callControl(path, 'item.set', { kind: 'user', id: 'alice', item: 'language', value: { display: 'pl' } });
  t.like(await callControl(path, 'users.list', { search: 'ali' }), { users: [{ kind: 'user', id: 'alice' }] });
  const bad = await t.throwsAsync(callControl(path, 'devices.remove', { id: 42 }), { instanceOf: MfpError });
  t.is(bad?.code, 'INVALID_ARGUMENT');
  t.is(bad?.message, 'devices.remove: id must be a string of 1 to 128 characters');
  const role = await t.throwsAsync(callControl(path, 'devices.list', {}), { instanceOf: MfpError });
  t.is(role?.code, 'WRONG_ROLE');
});

/** A raw control socket connection: send a request, read JSON lines as they come. */
async function connect(path: string): Promise<{ socket: Socket; send: (req: object) => void; next: (pred: (m: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>> }> {
  const socket = createConnection(path);
  await once(socket, 'connect');
  const seen: Record<string, unknown>[] = [];
  const waiters: { pred: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const m = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
      buffer = buffer.slice(nl + 1);
      const w = waiters.find((x) => x.pred(m));
      if (w) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      } else seen.push(m);
    }
  });
  return {
    socket,
    send: (req) => socket.write(JSON.stringify(req) + '\n'),
    next: (pred) => {
      const i = seen.findIndex(pred);
      if (i >= 0) return Promise.resolve(seen.splice(i, 1)[0]!);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

test.serial('events.subscribe answers what it subscribed, then streams the events as JSON lines; requests still work', async (t) => {
  const c = await connect(daemon.control.path);
  t.teardown(() => c.socket.destroy());
  c.send({ id: 'sub', method: 'events.subscribe', params: { events: ['item-changed', 'item-changed'] } });
  t.deepEqual(await c.next((m) => m.id === 'sub'), { id: 'sub', result: { subscribed: ['item-changed'] } });
  await callControl(daemon.control.path, 'item.set', { kind: 'user', id: 'bob', item: 'language', value: { display: 'en' } });
  t.deepEqual(await c.next((m) => m.event === 'item-changed' && m.id === 'bob'), { event: 'item-changed', kind: 'user', id: 'bob', item: 'language', source: 'local', applyNow: true });
  c.send({ id: 7, method: 'power.status' });
  t.like(await c.next((m) => m.id === 7), { result: { role: 'standalone' } });
});

test.serial('events.subscribe with no filter follows every event; a name that is not an event is INVALID_ARGUMENT', async (t) => {
  const c = await connect(daemon.control.path);
  t.teardown(() => c.socket.destroy());
  c.send({ id: 1, method: 'events.subscribe', params: { events: ['item-changed', 'items-changed'] } });
  const bad = await c.next((m) => m.id === 1);
  t.like(bad, { error: { code: 'INVALID_ARGUMENT' } });
  t.regex((bad.error as { message: string }).message, /"items-changed" is not an event; one of item-changed, entity-deleted, sync-state/);
  c.send({ id: 2, method: 'events.subscribe' });
  const all = await c.next((m) => m.id === 2);
  t.deepEqual((all.result as { subscribed: string[] }).subscribed, ['item-changed', 'entity-deleted', 'sync-state', 'changes-acked', 'changes-sent', 'join-progress', 'deep-sleep', 'device-state', 'replicated', 'login-again']);
});

test.serial('a subscriber that does not read is dropped with a warning once its backlog passes the bound', async (t) => {
  const c = await connect(daemon.control.path);
  c.send({ id: 'sub', method: 'events.subscribe', params: { events: ['item-changed'] } });
  await c.next((m) => m.id === 'sub');
  const before = daemon.control.subscribers;
  c.socket.pause();
  const closed = once(c.socket, 'close');
  // Events of 1 KB, twice the bound and more than the socket buffers hold: the agent's side must give up.
  const item = 'x'.repeat(1000);
  for (let i = 0; i < (2 * MAX_SUBSCRIBER_BACKLOG) / 1000 + 2000 && daemon.control.subscribers === before; i++) {
    daemon.agent.emit('item-changed', { kind: 'user', id: `flood${i}`, item, source: 'local', applyNow: true });
  }
  t.is(daemon.control.subscribers, before - 1, 'the subscriber was dropped');
  c.socket.resume();
  await closed;
  const log = (await callControl(daemon.control.path, 'log', { level: 'warning' })) as { entries: { code: string; message: string }[] };
  t.true(log.entries.some((e) => e.code === 'EVENTS_DROPPED' && /did not read its events/.test(e.message)));
});
