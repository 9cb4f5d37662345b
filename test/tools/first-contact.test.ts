/**
 * A new user's first contact with the shell (issue 18), each case run as a technician would: the real
 * `mfpsync` as a child process, on real directories — a file given as --data, a directory another user
 * owns, a read-only filesystem (a real tmpfs remounted read-only), options refused before the disk is
 * touched, a group without its subcommand, group IDs outside 01–50.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile, spawn } from 'node:child_process';
import test from 'ava';
import { AgentProcess, MFPSYNC, shell } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

const run = promisify(execFile);

/** Runs the shell (human output) as another user when `uid` is given; resolves with its code and output. */
function sh(dataDir: string, args: string[], uid?: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MFPSYNC, '--data', dataDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(uid !== undefined ? { uid, gid: uid } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const GROUPS = ['role', 'user', 'group', 'users', 'devices', 'sharing', 'power', 'conflicts', 'replication'];

test('a command group without its subcommand prints the group\'s help, exit 0', async (t) => {
  const dir = tempDir(t);
  const results = await Promise.all(GROUPS.map((g) => sh(join(dir, 'd'), [g])));
  for (const [i, r] of results.entries()) {
    t.is(r.code, 0, GROUPS[i]);
    t.regex(r.stdout, new RegExp(`^Usage: mfpsync ${GROUPS[i]} \\[options\\] \\[command\\]`), GROUPS[i]);
    t.regex(r.stdout, /Commands:/);
    t.is(r.stderr, '');
  }
  t.false(existsSync(join(dir, 'd')), 'help touches no disk');
});

test('run refuses a bad option before it creates anything', async (t) => {
  const dir = tempDir(t);
  for (const args of [['--heartbeat', '0'], ['--heartbeat', '-1'], ['--heartbeat', 'abc'], ['--port', '70000'], ['--durability', 'never']]) {
    const data = join(dir, args.join('_'));
    const r = await sh(data, ['run', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, /^error INVALID_ARGUMENT: /);
    t.false(existsSync(data), `${args.join(' ')}: no data directory, identity or password was made`);
  }
});

test('--data naming a file is DATA_DIR_INVALID, for init, run and the commands that talk to the agent', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'file');
  writeFileSync(file, 'not a directory\n');
  for (const [args, data] of [[['init', '--name', 'a'], file], [['run', '--port', '0'], file], [['status'], join(file, 'sub')]] as const) {
    const r = await sh(data, [...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, /^error DATA_DIR_INVALID: .*is a file, not a directory; give --data a directory/, args.join(' '));
  }
});

/** Whether `uid` can read the shell at all: a checkout under a 0700 directory (mktemp -d) hides it. */
function canRunShellAs(uid: number): Promise<boolean> {
  return new Promise((resolve) => {
    const check = `require('node:fs').accessSync(${JSON.stringify(MFPSYNC)}, require('node:fs').constants.R_OK)`;
    const child = spawn(process.execPath, ['-e', check], { stdio: 'ignore', uid, gid: uid });
    child.once('error', () => resolve(false));
    child.once('close', (code) => resolve(code === 0));
  });
}

test('a data directory this user may not use is PERMISSION_DENIED, not a raw errno', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('not root: cannot run the shell as another user here');
    t.pass();
    return;
  }
  if (!(await canRunShellAs(65534))) {
    t.log(`uid 65534 cannot read ${MFPSYNC} (a parent directory is closed to it): cannot run the shell as another user here`);
    t.pass();
    return;
  }
  const dir = tempDir(t);
  const data = join(dir, 'agent');
  t.is((await sh(data, ['init', '--name', 'a'])).code, 0);
  // The agent's directory is 0700 and root's; nobody (65534) reaches its parent but not inside it.
  await run('chmod', ['755', dir]);
  for (const args of [['status'], ['run', '--port', '0'], ['init', '--name', 'b']]) {
    const r = await sh(args[0] === 'init' ? join(data, 'inner') : data, args, 65534);
    t.is(r.code, 3, args.join(' '));
    t.regex(r.stderr, /^error PERMISSION_DENIED: .*permission denied for this user \(uid 65534\); run as the agent's user/, args.join(' '));
  }
});

test('a store on a read-only filesystem is STORE_READ_ONLY, and is whole once it is writable again', async (t) => {
  const mount = await mountTmpfs(t, 16 * 1024 * 1024);
  if (!mount) return;
  const data = join(mount, 'agent');
  const agent = await AgentProcess.spawn(t, { name: 'ro', dataDir: data });
  await agent.ok('user', 'set', 'ro-user', 'language', '{"display":"pl"}');
  await agent.kill('SIGTERM');
  await run('mount', ['-o', 'remount,ro', mount]);
  const r = await sh(data, ['run', '--port', '0']);
  t.is(r.code, 3);
  t.regex(r.stderr, /^error STORE_READ_ONLY: .*mounted read-only; the data is intact: remount it read-write/);
  const fresh = await sh(join(mount, 'new', 'deeper'), ['init', '--name', 'n']);
  t.is(fresh.code, 3);
  t.regex(fresh.stderr, /^error STORE_READ_ONLY: /);
  await run('mount', ['-o', 'remount,rw', mount]);
  await agent.start();
  t.deepEqual(await agent.value('user', 'ro-user', 'language'), { display: 'pl' });
});

test('group IDs are 01–50; an unknown item lists the valid names', async (t) => {
  const agent = await AgentProcess.spawn(t, { name: 'g' });
  for (const id of ['99', '0', '51', 'sales', '007']) {
    const r = await shell(agent.dataDir, 'group', 'get', id);
    t.is(r.code, 2, id);
    t.regex(r.stderr, /^error INVALID_ARGUMENT: group ID must be 01-50/, id);
  }
  await agent.ok('group', 'set', '7', 'address-list', '[{"name":"Sales","email":"sales@example.com"}]');
  t.deepEqual(await agent.value('group', '07', 'address-list'), [{ name: 'Sales', email: 'sales@example.com' }], '7 and 07 are one group');
  const unknown = await shell(agent.dataDir, 'user', 'get', 'bob', 'wallpaper');
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /^error UNKNOWN_ITEM: no user item named "wallpaper"; the user items are: language, accessibility, .*keychain/);
});

test('npm start stopped by SIGTERM to npm stops the agent too', async (t) => {
  const data = join(tempDir(t), 'd');
  // In a process group of its own: whatever is left of it at the end is killed with it.
  const npm = spawn('npm', ['start', '--silent', '--', '--ui-port', '0'], { cwd: join(MFPSYNC, '../../..'), env: { ...process.env, MFPSYNC_DATA: data }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  t.teardown(() => {
    try {
      process.kill(-npm.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  const closed = new Promise<void>((resolve) => npm.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    npm.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('mfpsync ready')) resolve();
    });
    npm.once('close', (code) => reject(new Error(`npm start ended (${code}) before the ready line: ${out}`)));
  });
  t.is((await sh(data, ['status'])).code, 0, 'the agent answers while npm start runs');
  npm.kill('SIGTERM');
  // Bounded: an npm that waits on an agent which never got the signal does not end by itself.
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
  const after = await sh(data, ['status']);
  t.is(after.code, 3, 'no agent answers once npm has ended');
  t.regex(after.stderr, /^error AGENT_NOT_RUNNING: /);
});
