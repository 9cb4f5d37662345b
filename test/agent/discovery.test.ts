/**
 * Finding the server (SPEC §13) on a real LAN that the test makes itself: network namespaces (two
 * servers' machines, a client's machine) with veth pairs into a bridge inside a namespace of its own.
 * The host's network carries nothing. Agents are real processes run with `ip netns exec`; the shell
 * reaches them through their control sockets (paths in the file system, shared by the namespaces).
 * One LAN for the whole file, the cases in order: none, one, two, an address change, a stranger.
 * Without the rights to make namespaces (not root, no `ip`), every case is skipped with the reason.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { AgentProcess, humanShell, type AgentEvent } from '../../tools/fleet.js';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);
const tag = `md${process.pid % 100000}`;
const ns = (n: string) => `${tag}-${n}`;
const MACHINES = { s1: '10.88.0.1', s2: '10.88.0.2', c: '10.88.0.9' } as const;
const PORT = 8443;
const STRANGER = join(import.meta.dirname, '../helpers/stranger.js');

/** The LAN, or why it could not be made. */
let lab: { skip: string } | { skip: undefined; dir: string } = { skip: 'not set up' };
const cleanups: (() => Promise<void> | void)[] = [];
const agents: Record<string, AgentProcess> = {};

/** Puts namespace `n` on the bridge with `address` (and a route for multicast). */
async function machine(n: keyof typeof MACHINES, address: string): Promise<void> {
  await ip('netns', 'add', ns(n));
  cleanups.push(() => ip('netns', 'del', ns(n)).then(() => undefined, () => undefined));
  const inside = `${tag}${n}`;
  const outside = `${tag}${n}b`;
  await ip('link', 'add', inside, 'type', 'veth', 'peer', 'name', outside);
  await ip('link', 'set', inside, 'netns', ns(n));
  await ip('link', 'set', outside, 'netns', ns('br'));
  await ip('-n', ns('br'), 'link', 'set', outside, 'master', 'br0', 'up');
  await ip('-n', ns(n), 'link', 'set', 'lo', 'up');
  await ip('-n', ns(n), 'addr', 'add', `${address}/24`, 'dev', inside);
  await ip('-n', ns(n), 'link', 'set', inside, 'up', 'multicast', 'on');
  await ip('-n', ns(n), 'route', 'add', '224.0.0.0/4', 'dev', inside);
}

/** Moves machine n to another address (the route for multicast goes with the last address: added again). */
async function readdress(n: keyof typeof MACHINES, from: string, to: string): Promise<void> {
  const dev = `${tag}${n}`;
  await ip('-n', ns(n), 'addr', 'del', `${from}/24`, 'dev', dev);
  await ip('-n', ns(n), 'addr', 'add', `${to}/24`, 'dev', dev);
  await ip('-n', ns(n), 'route', 'replace', '224.0.0.0/4', 'dev', dev);
}

/** An agent in machine n's namespace. */
async function agent(name: string, n: keyof typeof MACHINES, runArgs: string[] = []): Promise<AgentProcess> {
  if (lab.skip !== undefined) throw new Error(lab.skip);
  const a = await AgentProcess.launch({ defer: (_w, release) => cleanups.push(release) }, {
    name,
    dataDir: join(lab.dir, name),
    port: PORT,
    heartbeat: 1,
    prefix: ['ip', 'netns', 'exec', ns(n)],
    runArgs: ['--host', '::', '--search-ms', '1000', ...runArgs],
  });
  agents[name] = a;
  return a;
}

test.before(async () => {
  if (process.platform !== 'linux') {
    lab = { skip: 'network namespaces are Linux only' };
    return;
  }
  try {
    await ip('netns', 'add', ns('br'));
  } catch (err) {
    lab = { skip: `cannot make a network namespace (root and iproute2 needed): ${(err as Error).message.split('\n')[0]}` };
    return;
  }
  cleanups.push(() => ip('netns', 'del', ns('br')).then(() => undefined, () => undefined));
  try {
    await ip('-n', ns('br'), 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', ns('br'), 'link', 'set', 'br0', 'up');
    for (const [n, address] of Object.entries(MACHINES)) await machine(n as keyof typeof MACHINES, address);
  } catch (err) {
    lab = { skip: `cannot make the LAN of namespaces: ${(err as Error).message.split('\n')[0]}` };
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mfp-disc-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  lab = { skip: undefined, dir };
});

test.after.always(async () => {
  // Agents first (registered last), then the namespaces, then the folder.
  for (const c of cleanups.reverse()) await c();
});

/** Runs a case on the LAN, or skips it with the reason. */
function lan(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  test.serial(title, async (t) => {
    if (lab.skip !== undefined) {
      t.log(`skipped: ${lab.skip}`);
      t.pass();
      return;
    }
    await fn(t);
  });
}

type Status = { client?: { server: string; state: string; foundBy?: string; groupId?: string; groupKey?: string; error?: { code: string } } };
type Refusal = { error: { code: string; message: string } };

lan('no server answers: ADDRESS_INCORRECT, exit 5; a standalone machine and a replica do not advertise', async (t) => {
  await agent('server1', 's1');
  const replica = await agent('server2', 's2');
  await replica.ok('role', 'set', 'replica');
  const client = await agent('client', 'c');
  const r = await client.sh('role', 'set', 'client', '--user', 'admin', '--password', 'secret-pw');
  t.is(r.code, 5);
  t.is((r.json as Refusal).error.code, 'ADDRESS_INCORRECT');
  t.regex((r.json as Refusal).error.message, /no server answered the search/);
  t.is((await client.ok<Status>('status')).client, undefined);
});

lan('one server: the client joins it by search, and status shows the address found', async (t) => {
  await agents.server1!.ok('role', 'set', 'server');
  const status = await agents.client!.ok<Status>('role', 'set', 'client', '--search-depth', '1', '--user', 'admin', '--password', 'secret-pw');
  t.is(status.client?.server, `${MACHINES.s1}:${PORT}`);
  t.is(status.client?.foundBy, 'search');
  t.is(status.client?.state, 'live');
  const human = await humanShell(agents.client!.dataDir, 'status');
  t.regex(human.stdout, new RegExp(`live → ${MACHINES.s1.replaceAll('.', '\\.')}:${PORT} \\(found by search\\)`));
});

lan('two servers: SERVER_AMBIGUOUS naming both, exit 5; `run --no-advertise` keeps one quiet', async (t) => {
  const server2 = agents.server2!;
  await server2.ok('role', 'set', 'server');
  const other = await agent('client2', 'c');
  const r = await other.sh('role', 'set', 'client', '--user', 'admin', '--password', 'secret-pw');
  t.is(r.code, 5);
  const { code, message } = (r.json as Refusal).error;
  t.is(code, 'SERVER_AMBIGUOUS');
  const groups = await Promise.all([agents.server1!, server2].map((s) => s.ok<{ group: { groupId: string } }>('status')));
  for (const [i, s] of [['server1', MACHINES.s1], ['server2', MACHINES.s2]].entries()) {
    t.true(message.includes(`${s[0]} at ${s[1]}:${PORT}`), message);
    t.true(message.includes(`(group ${groups[i]!.group.groupId})`), message);
  }
  // Quiet, the second server is not found: the search finds one, and the client joins it.
  await server2.kill();
  server2.options.runArgs = [...(server2.options.runArgs ?? []), '--no-advertise'];
  await server2.start();
  const joined = await other.ok<Status>('role', 'set', 'client', '--user', 'admin', '--password', 'secret-pw');
  t.is(joined.client?.server, `${MACHINES.s1}:${PORT}`);
});

lan('the server\'s address changes: the client finds it again and goes live, same group key', async (t) => {
  const client = agents.client!;
  const before = await client.ok<Status>('status');
  const since = client.events.length;
  await readdress('s1', MACHINES.s1, '10.88.0.11');
  await client.waitFor((e: AgentEvent) => e.event === 'sync-state' && e.state === 'offline', 15_000, since);
  const offline = client.events.length;
  await client.waitFor((e: AgentEvent) => e.event === 'sync-state' && e.state === 'live', 30_000, offline);
  const after = await client.ok<Status>('status');
  t.is(after.client?.server, `10.88.0.11:${PORT}`);
  t.is(after.client?.groupKey, before.client?.groupKey);
  t.is(after.client?.groupId, before.client?.groupId);
  t.is(after.client?.foundBy, 'search');
});

lan('a stranger advertising the group\'s id with another key is refused; the client stays on its pin and address', async (t) => {
  const client = agents.client!;
  const server1 = agents.server1!;
  const before = await client.ok<Status>('status');
  const since = client.events.length;
  await server1.kill('SIGKILL');
  const stranger = spawn('ip', ['netns', 'exec', ns('s2'), process.execPath, STRANGER, before.client!.groupId!, 'server1', String(PORT + 1)], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => strangerGone(stranger));
  const lines = createInterface({ input: stranger.stdout! });
  const heard = new Promise<AgentEvent>((resolve) => lines.on('line', (l) => {
    const e = JSON.parse(l) as AgentEvent;
    if (e.event === 'hello') resolve(e);
  }));
  await heard;
  const refused = await client.waitFor((e: AgentEvent) => e.event === 'sync-state' && (e.error as { code?: string } | undefined)?.code === 'GROUP_KEY_CHANGED', 15_000, since);
  t.is(refused.state, 'offline');
  const after = await client.ok<Status>('status');
  t.not(after.client?.state, 'refused');
  t.is(after.client?.server, before.client?.server);
  t.is(after.client?.groupKey, before.client?.groupKey);
  // The group's server back at its address: the client is live with it again.
  const back = client.events.length;
  await server1.start();
  await client.waitFor((e: AgentEvent) => e.event === 'sync-state' && e.state === 'live', 30_000, back);
  t.is((await client.ok<Status>('status')).client?.server, before.client?.server);
});

function strangerGone(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}
