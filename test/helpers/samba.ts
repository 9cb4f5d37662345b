/**
 * A real Samba server for the SMB tests: Debian's smbd on 127.0.0.1 and a free port, with its
 * configuration, databases, shares and log in a temp dir, root as its only user, stopped when the
 * test ends.
 *
 * smbd runs in the foreground (`-F`) and makes itself a session leader (setsid) on start, so it is
 * spawned *without* `detached`: a child that already leads its own session fails that setsid and
 * smbd exits with "Failed to create session" (checked with Samba 4.17). It still ends up in a
 * session and process group of its own, apart from the test's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { freePort } from './agents.js';
import { tempDir } from './tmp.js';

/** One share of the test server. */
export interface SambaShareSpec {
  name: string;
  readOnly?: boolean;
  /** Local directory to serve (default a fresh one in the server's temp dir), e.g. a small tmpfs. */
  path?: string;
}

/** A running test server. */
export interface Samba {
  host: '127.0.0.1';
  port: number;
  user: 'root';
  password: string;
  /** The local path of a share. */
  dir(share: string): string;
  /** `smb://127.0.0.1:PORT/SHARE[/DIR]`. */
  url(share: string, dir?: string): string;
  /** The end of smbd's log, for failure messages. */
  logTail(): string;
  /** Stops smbd (also done on teardown): SIGTERM, SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** How long smbd may take to accept connections. */
const START_DEADLINE_MS = 10_000;
/** How long smbd may take to exit on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

/** The path of an executable on the PATH or in the sbin directories a non-root PATH may lack. */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Whether the Samba programs a test needs are installed. When some are missing: under CI (CI set)
 * throws, since CI must have them; elsewhere logs why, counts one passing assertion (ava wants one)
 * and returns false, so the test returns early.
 */
export function haveSamba(t: ExecutionContext, programs: readonly string[] = ['smbd', 'smbpasswd', 'smbclient']): boolean {
  const missing = programs.filter((p) => !findProgram(p));
  if (missing.length === 0) return true;
  const message = `${missing.join(', ')} not installed (apt-get install samba smbclient)`;
  if (process.env.CI) throw new Error(`${message}: CI must run the SMB tests`);
  t.log(`${message}: skipping this SMB test`);
  t.pass();
  return false;
}

/**
 * Starts smbd with the given shares, root's password set, and waits until its port accepts. Returns
 * undefined when Samba is not installed outside CI, after logging it and passing once:
 * `const smb = await startSamba(t, …); if (!smb) return;`.
 */
export async function startSamba(t: ExecutionContext, options: { shares: SambaShareSpec[] }): Promise<Samba | undefined> {
  if (!haveSamba(t)) return undefined;
  const root = tempDir(t, 'mfp-smb-');
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const dirs: Record<string, string> = {};
  for (const share of options.shares) {
    dirs[share.name] = share.path ?? join(root, 'shares', share.name);
    mkdirSync(dirs[share.name]!, { recursive: true });
  }
  for (const sub of ['private', 'lock', 'state', 'pid', 'cache', 'ncalrpc']) mkdirSync(join(root, sub));
  const log = join(root, 'smbd.log');
  const conf = join(root, 'smb.conf');
  const logTail = () => {
    try {
      return readFileSync(log, 'utf8').split('\n').slice(-25).join('\n');
    } catch {
      return '(no log)';
    }
  };

  // A port found free may be taken before smbd binds it: then smbd exits and another port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(conf, config(root, port, options.shares, dirs));
    if (attempt === 1) setPassword(conf, password);
    const out = openSync(log, 'a');
    const child = spawn(findProgram('smbd')!, ['-s', conf, '-F'], { stdio: ['ignore', out, out] });
    closeSync(out);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const stop = () => stopSmbd(child, exited);
    t.teardown(stop);
    const started = await waitForPort(port, child, exited);
    if (started === 'up') {
      return {
        host: '127.0.0.1', port, user: 'root', password,
        dir: (share) => {
          const dir = dirs[share];
          if (dir === undefined) throw new TypeError(`no share ${share}`);
          return dir;
        },
        url: (share, dir) => `smb://127.0.0.1:${port}/${share}${dir ? `/${dir}` : ''}`,
        logTail,
        stop,
      };
    }
    await stop();
    if (started === 'exited' && attempt < 3 && /address already in use/i.test(logTail())) continue;
    throw new Error(`smbd did not accept connections on 127.0.0.1:${port} (${started}); log:\n${logTail()}`);
  }
}

function config(root: string, port: number, shares: SambaShareSpec[], dirs: Record<string, string>): string {
  const lines = [
    '[global]',
    `smb ports = ${port}`,
    'interfaces = 127.0.0.1',
    'bind interfaces only = yes',
    'server min protocol = SMB2',
    `private dir = ${join(root, 'private')}`,
    `lock directory = ${join(root, 'lock')}`,
    `state directory = ${join(root, 'state')}`,
    `pid directory = ${join(root, 'pid')}`,
    `cache directory = ${join(root, 'cache')}`,
    `ncalrpc dir = ${join(root, 'ncalrpc')}`,
    `log file = ${join(root, 'smbd.log')}`,
    'log level = 1',
    'disable spoolss = yes',
    'load printers = no',
    'printcap name = /dev/null',
    `passdb backend = tdbsam:${join(root, 'passdb.tdb')}`,
  ];
  for (const share of shares) {
    lines.push(`[${share.name}]`, `path = ${dirs[share.name]}`, `read only = ${share.readOnly ? 'yes' : 'no'}`, 'valid users = root', 'force user = root');
  }
  return lines.map((l) => (l.startsWith('[') ? l : `  ${l}`)).join('\n') + '\n';
}

/** Sets root's Samba password in the server's own passdb (password twice on stdin). */
function setPassword(conf: string, password: string): void {
  const r = spawnSync(findProgram('smbpasswd')!, ['-c', conf, '-a', '-s', 'root'], { input: `${password}\n${password}\n`, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`smbpasswd failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
}

/** Polls the port until it accepts ('up'), smbd exits ('exited'), or the deadline passes ('timeout'). */
async function waitForPort(port: number, child: ChildProcess, exited: Promise<void>): Promise<'up' | 'exited' | 'timeout'> {
  const deadline = Date.now() + START_DEADLINE_MS;
  let gone = false;
  void exited.then(() => (gone = true));
  while (Date.now() < deadline) {
    if (gone || child.exitCode !== null || child.signalCode !== null) return 'exited';
    if (await accepts(port)) return 'up';
    await new Promise((r) => setTimeout(r, 25));
  }
  return 'timeout';
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** SIGTERM, then SIGKILL if smbd has not exited after the grace period; resolves once it has exited. */
async function stopSmbd(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), STOP_GRACE_MS)));
  const how = await Promise.race([exited.then(() => 'exited' as const), late]);
  clearTimeout(timer);
  if (how === 'late') {
    child.kill('SIGKILL');
    await exited;
  }
}
