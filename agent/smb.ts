/**
 * A backup destination on an SMB share (SPEC §10): `smb://HOST[:PORT]/SHARE[/DIR…]` with a user and a
 * password, spoken through Debian's `smbclient` as a subprocess.
 *
 * Why a subprocess: of the npm SMB libraries only `node-smb2` works here, and only with NTLMv2 forced;
 * `@marsaud/smb2` and `v9u-smb2` crash on Node 20's OpenSSL. Debian's `smbclient`, Samba's own client,
 * negotiates what the share asks for (SMB2/3, NTLMv2 or Kerberos), and a 20 MB random file was checked
 * to round-trip through it byte-exact.
 *
 * Hazards of smbclient this module works around:
 * - With several `-c` commands smbclient runs them all, even after one failed, and exits with the last
 *   one's status. So a `cd DIR; put …` whose `cd` fails would write into the share's root. The
 *   directory is entered with `--directory` instead (smbclient stops when that fails), each call runs
 *   one command, and the output is always scanned for `NT_STATUS_*`, whatever the exit code.
 * - For the same reason an upload and its rename are two calls: the rename runs only when the upload
 *   reported nothing, so a cut or refused upload never appears under the final name.
 * - `-c` splits on `;` even inside quotes, and `-U a%b` means user `a`, password `b`: such names and
 *   users are refused. The password travels in the `PASSWD` environment variable, never on the command
 *   line (where `ps` shows it) and never in a message.
 * - `-t` does not bound the connection phase (a port that accepts and never answers holds smbclient
 *   for 20 s), so the process is also killed after `timeoutMs`.
 *
 * SmbError stays inside the backup layer; `smbErrorCode` turns it into the MfpError the shell shows.
 */
import { spawn } from 'node:child_process';
import { access, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isIP, isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import { MfpError } from '../protocol/errors.js';
import { systemClock, type Clock } from './clock.js';

/** The SMB port when the URL names none. */
export const SMB_DEFAULT_PORT = 445;
/** How long one smbclient call may take unless told otherwise. */
export const SMB_TIMEOUT_MS = 30_000;
/** Suffix of an upload in progress; renamed to the final name once complete. */
export const PARTIAL_SUFFIX = '.partial';

/** Where an SMB destination is: host, port, share, and a directory inside it ('' for the share's root). */
export interface SmbLocation {
  host: string;
  port: number;
  share: string;
  /** Directory inside the share, `/`-separated, without leading or trailing slash; '' for the root. */
  dir: string;
}

/** Characters Windows refuses in file, directory and share names (control characters too: hasControl). */
const BAD_NAME_CHARS = /[\\/:*?"<>|]/;

/** Whether text holds a C0 control character or DEL. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$/;

function invalid(message: string): MfpError {
  return new MfpError('INVALID_ARGUMENT', message);
}

function decodeSegment(segment: string, url: string): string {
  let text: string;
  try {
    text = decodeURIComponent(segment);
  } catch {
    throw invalid(`${url}: bad percent-encoding in "${segment}"`);
  }
  if (text === '' || text === '.' || text === '..' || BAD_NAME_CHARS.test(text) || hasControl(text)) {
    throw invalid(`${url}: "${text}" is not a valid share or directory name`);
  }
  return text;
}

/**
 * Parses `smb://HOST[:PORT]/SHARE[/DIR/…]` (IPv6 hosts in brackets; percent-escapes decoded); anything
 * else, credentials in the URL included, is INVALID_ARGUMENT.
 */
export function parseSmbUrl(url: string): SmbLocation {
  if (typeof url !== 'string') throw new TypeError('url must be a string');
  const scheme = /^smb:\/\//i.exec(url);
  if (!scheme) throw invalid('an SMB destination must look like smb://HOST[:PORT]/SHARE[/DIR]');
  const rest = url.slice(scheme[0].length);
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  // Checked before anything echoes the URL: a password typed into it must not reach a message.
  if (authority.includes('@')) throw invalid('an SMB URL may not carry credentials: give them with --user and --password');
  if (/[?#]/.test(url)) throw invalid(`${url}: queries and fragments are not allowed (write ? and # as %3F and %23)`);
  if (hasControl(url)) throw invalid('an SMB URL may not contain control characters');

  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(authority);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (!isIPv6(host)) throw invalid(`${url}: "${host}" is not an IPv6 address`);
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
    if (!HOSTNAME.test(host) && isIP(host) !== 4) throw invalid(`${url}: "${host}" is not a host name or address`);
  }
  let port = SMB_DEFAULT_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
    if (port < 1 || port > 65535) throw invalid(`${url}: the port must be a number from 1 to 65535`);
  }

  const segments = slash < 0 ? [] : rest.slice(slash + 1).split('/');
  if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop(); // a trailing slash
  if (segments.length === 0 || segments[0] === '') throw invalid(`${url}: the URL names no share`);
  const [share, ...dir] = segments.map((s) => decodeSegment(s, url));
  return { host, port, share: share!, dir: dir.join('/') };
}

function encodeSegment(text: string): string {
  return text.replace(/[%?#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The URL of a location, without credentials (they are never part of one); parseSmbUrl reads it back. */
export function formatSmbUrl(location: SmbLocation): string {
  const host = location.host.includes(':') ? `[${location.host}]` : location.host;
  const port = location.port === SMB_DEFAULT_PORT ? '' : `:${location.port}`;
  const path = [location.share, ...(location.dir ? location.dir.split('/') : [])].map(encodeSegment).join('/');
  return `smb://${host}${port}/${path}`;
}

/** Why an SMB operation failed, as far as smbclient's output tells. */
export type SmbFailure = 'not-found' | 'access' | 'space' | 'missing-file' | 'other';

/** An SMB operation that failed; `status` is smbclient's NT status when it printed one. */
export class SmbError extends Error {
  readonly kind: SmbFailure;
  readonly status?: string;
  /** The destination, without credentials. */
  readonly url: string;

  constructor(kind: SmbFailure, url: string, message: string, options: { status?: string; cause?: unknown } = {}) {
    super(`${url}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SmbError';
    this.kind = kind;
    this.url = url;
    if (options.status !== undefined) this.status = options.status;
  }
}

/** What a status says, whatever the line it is on. */
const STATUS_KIND: Record<string, SmbFailure> = {
  NT_STATUS_CONNECTION_REFUSED: 'not-found',
  NT_STATUS_CONNECTION_DISCONNECTED: 'not-found',
  NT_STATUS_CONNECTION_RESET: 'not-found',
  NT_STATUS_CONNECTION_ABORTED: 'not-found',
  NT_STATUS_HOST_UNREACHABLE: 'not-found',
  NT_STATUS_NETWORK_UNREACHABLE: 'not-found',
  NT_STATUS_IO_TIMEOUT: 'not-found',
  NT_STATUS_BAD_NETWORK_NAME: 'not-found',
  NT_STATUS_BAD_NETWORK_PATH: 'not-found',
  NT_STATUS_LOGON_FAILURE: 'access',
  NT_STATUS_WRONG_PASSWORD: 'access',
  NT_STATUS_NO_SUCH_USER: 'access',
  NT_STATUS_PASSWORD_EXPIRED: 'access',
  NT_STATUS_PASSWORD_MUST_CHANGE: 'access',
  NT_STATUS_ACCESS_DENIED: 'access',
  NT_STATUS_NETWORK_ACCESS_DENIED: 'access',
  NT_STATUS_MEDIA_WRITE_PROTECTED: 'access',
  NT_STATUS_DISK_FULL: 'space',
  NT_STATUS_QUOTA_EXCEEDED: 'space',
};

/** Statuses that mean "no such name": the directory when smbclient was entering it, else the file. */
const NO_SUCH_NAME = new Set(['NT_STATUS_OBJECT_NAME_NOT_FOUND', 'NT_STATUS_OBJECT_PATH_NOT_FOUND', 'NT_STATUS_NO_SUCH_FILE', 'NT_STATUS_NOT_A_DIRECTORY']);

/** Lines of the connection phase: whatever their status, the destination was not reached. */
const CONNECT_LINE = /Connection to \S+ failed|Error connecting|protocol negotiation failed|Unable to resolve|resolve_name|name_resolve/i;

/** The first failure smbclient's output reports, or undefined when it reports none. */
export function classifySmbOutput(output: string): { kind: SmbFailure; status?: string; line: string } | undefined {
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    const status = /NT_STATUS_[A-Z0-9_]+/.exec(line)?.[0];
    if (status === 'NT_STATUS_OK') continue;
    if (status !== undefined) {
      if (status.startsWith('NT_STATUS_ACCOUNT_')) return { kind: 'access', status, line };
      const kind = STATUS_KIND[status];
      if (kind) return { kind, status, line };
      if (NO_SUCH_NAME.has(status)) return { kind: /^cd\b/.test(line) || CONNECT_LINE.test(line) ? 'not-found' : 'missing-file', status, line };
      return { kind: CONNECT_LINE.test(line) ? 'not-found' : 'other', status, line };
    }
    if (CONNECT_LINE.test(line)) return { kind: 'not-found', line };
  }
  return undefined;
}

/** One file of a listing; `mtime` in ms since the epoch (whole seconds). */
export interface SmbFile {
  name: string;
  size: number;
  mtime: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** `  NAME  ATTRS  SIZE  Www Mmm dd hh:mm:ss yyyy` — smbclient's `%-30s%7.7s %8.0f  %s`; the greedy name keeps inner spaces. */
const LS_LINE = /^ {2}(.*\S)\s+([A-Z]{1,7})\s+(\d+) {2}\w{3} (\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/;

/** Files (not directories) of an `ls` output printed with TZ=UTC. */
export function parseSmbListing(output: string): SmbFile[] {
  const files: SmbFile[] = [];
  for (const line of output.split('\n')) {
    const m = LS_LINE.exec(line.replace(/\r$/, ''));
    if (!m || m[2]!.includes('D')) continue;
    const month = MONTHS.indexOf(m[4]!);
    if (month < 0) continue;
    const mtime = Date.UTC(Number(m[9]), month, Number(m[5]), Number(m[6]), Number(m[7]), Number(m[8]));
    files.push({ name: m[1]!, size: Number(m[3]), mtime });
  }
  return files;
}

/** How to reach a share. */
export interface SmbShareOptions {
  /** `smb://HOST[:PORT]/SHARE[/DIR]`. */
  url: string;
  user: string;
  password: string;
  /** Longest one smbclient call may take before it is killed (default 30 s). */
  timeoutMs?: number;
  /** The kill timer's clock (default the system clock). */
  clock?: Clock;
  /** The smbclient program (default `smbclient` on the PATH). */
  smbclient?: string;
}

/** Most output kept from one call: a listing of thousands of files fits, a runaway one does not grow memory. */
const MAX_OUTPUT = 8 * 1024 * 1024;

/** A directory on an SMB share, reached with smbclient: upload, download, list and delete files in it. */
export class SmbShare {
  /** The destination, without credentials: what messages name. */
  readonly url: string;
  readonly location: SmbLocation;
  readonly #user: string;
  readonly #password: string;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #program: string;

  /** Checks the URL and user (INVALID_ARGUMENT); connects only when an operation runs. */
  constructor(options: SmbShareOptions) {
    this.location = parseSmbUrl(options.url);
    this.url = formatSmbUrl(this.location);
    if (typeof options.user !== 'string' || options.user === '' || options.user.includes('%') || hasControl(options.user)) {
      throw invalid('the SMB user must be non-empty, without "%" or control characters');
    }
    // It travels in an environment variable, which cannot hold NUL.
    if (typeof options.password !== 'string' || options.password.includes('\0')) {
      throw invalid('the SMB password may not contain NUL');
    }
    const timeoutMs = options.timeoutMs ?? SMB_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError('timeoutMs must be a positive number');
    this.#user = options.user;
    this.#password = options.password;
    this.#timeoutMs = timeoutMs;
    this.#clock = options.clock ?? systemClock;
    this.#program = options.smbclient ?? 'smbclient';
  }

  /**
   * Uploads a local file as `name`, replacing one of that name. It is written as `name.partial` and
   * renamed once complete, so a failed or cut upload never leaves a file under `name`; a partial file
   * left by a refused write (disk full) is deleted, best effort.
   */
  async put(localPath: string, name: string): Promise<void> {
    checkName(name);
    const local = resolve(localPath);
    checkLocalPath(local);
    try {
      await access(local, constants.R_OK);
    } catch (err) {
      throw new SmbError('other', this.url, `cannot read the local file ${local}`, { cause: err });
    }
    const partial = name + PARTIAL_SUFFIX;
    try {
      await this.#run(`put "${local}" "${partial}"`, `put ${name}`);
      // -f: replace an existing file of that name in one server-side rename.
      await this.#run(`rename "${partial}" "${name}" -f`, `put ${name}`);
    } catch (err) {
      // Only when the server answered and refused the write: unreached, refused at login or timed out,
      // there is nothing to delete or trying would cost another timeout (a stale .partial is
      // overwritten by the next upload of that name).
      if (err instanceof SmbError && err.status !== undefined && ['space', 'other', 'missing-file'].includes(err.kind)) {
        await this.#run(`del "${partial}"`, `delete ${partial}`).catch(() => undefined);
      }
      throw err;
    }
  }

  /**
   * Downloads `name` to a local file. It is written as `localPath.partial` and renamed once complete,
   * so a cut download never leaves a truncated file under `localPath`.
   */
  async get(name: string, localPath: string): Promise<void> {
    checkName(name);
    const local = resolve(localPath);
    const partial = local + PARTIAL_SUFFIX;
    checkLocalPath(partial);
    try {
      await this.#run(`get "${name}" "${partial}"`, `get ${name}`);
      await rename(partial, local);
    } catch (err) {
      await rm(partial, { force: true }).catch(() => undefined);
      if (err instanceof SmbError) throw err;
      throw new SmbError('other', this.url, `get ${name}: cannot write ${local}`, { cause: err });
    }
  }

  /** The files in the directory (directories left out), in smbclient's order. */
  async list(): Promise<SmbFile[]> {
    return parseSmbListing(await this.#run('ls', 'list'));
  }

  /** Deletes `name`; a missing file is an SmbError of kind 'missing-file'. */
  async remove(name: string): Promise<void> {
    checkName(name);
    await this.#run(`del "${name}"`, `delete ${name}`);
  }

  /** Runs one smbclient command in the directory; resolves with its output or throws a classified SmbError. */
  #run(command: string, what: string): Promise<string> {
    const { host, port, share, dir } = this.location;
    const args = [
      `//${host}/${share}`,
      `--port=${port}`,
      `--user=${this.#user}`,
      ...(this.#password === '' ? ['--no-pass'] : []),
      '--max-protocol=SMB3',
      `--timeout=${Math.max(1, Math.ceil(this.#timeoutMs / 1000))}`,
      ...(dir ? [`--directory=${dir}`] : []),
      `--command=${command}`,
    ];
    const env: NodeJS.ProcessEnv = { ...process.env, PASSWD: this.#password, TZ: 'UTC', LC_ALL: 'C' };
    delete env.PASSWD_FD;
    delete env.PASSWD_FILE;
    return new Promise((resolvePromise, reject) => {
      const child = spawn(this.#program, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
      let output = '';
      let killed = false;
      const collect = (chunk: string) => {
        if (output.length < MAX_OUTPUT) output += chunk;
      };
      child.stdout.setEncoding('utf8').on('data', collect);
      child.stderr.setEncoding('utf8').on('data', collect);
      const timer = this.#clock.setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, this.#timeoutMs);
      child.on('error', (err) => {
        timer.cancel();
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        reject(new SmbError('other', this.url, `${what}: ${missing ? `${this.#program} is not installed` : `cannot run ${this.#program}`}`, { cause: err }));
      });
      child.on('close', (code) => {
        timer.cancel();
        if (killed) {
          reject(new SmbError('other', this.url, `${what}: no result within ${this.#timeoutMs} ms (the destination does not answer or the transfer is too slow)`));
          return;
        }
        const failure = classifySmbOutput(output);
        if (failure) {
          const options = failure.status === undefined ? {} : { status: failure.status };
          reject(new SmbError(failure.kind, this.url, `${what}: ${failure.line}`, options));
        } else if (code !== 0) {
          const last = output.trim().split('\n').pop() ?? '';
          reject(new SmbError('other', this.url, `${what}: smbclient exited with ${code ?? 'a signal'}${last ? `: ${last}` : ''}`));
        } else {
          resolvePromise(output);
        }
      });
    });
  }
}

/** A file name in the directory: no path, no wildcard, nothing smbclient's `-c` parser would split on. */
function checkName(name: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.startsWith('-') || BAD_NAME_CHARS.test(name) || hasControl(name) || name.includes(';')) {
    throw invalid(`"${String(name)}" is not a valid file name on an SMB share`);
  }
}

/** A local path goes into the same `-c` script: quotes, `;` and line breaks would break out of it. */
function checkLocalPath(path: string): void {
  if (/["\n\r;]/.test(path) || path.includes('\0')) throw invalid(`the local path ${JSON.stringify(path)} may not contain ", ; or line breaks`);
}

/**
 * The coded error a failed backup or restore reports: DBBU04/DBBU05/DBBU03/DBBU02 for a backup,
 * DBRS03/DBRS04/DBRS02 for a restore (a missing backup file is DBRS03). A coded error is kept as it is.
 */
export function smbErrorCode(err: unknown, op: 'backup' | 'restore'): MfpError {
  if (err instanceof MfpError) return err;
  const kind: SmbFailure = err instanceof SmbError ? err.kind : 'other';
  const message = err instanceof Error ? err.message : String(err);
  const code = op === 'backup'
    ? ({ 'not-found': 'DBBU04', access: 'DBBU05', space: 'DBBU03', 'missing-file': 'DBBU02', other: 'DBBU02' } as const)[kind]
    : ({ 'not-found': 'DBRS03', access: 'DBRS04', space: 'DBRS02', 'missing-file': 'DBRS03', other: 'DBRS02' } as const)[kind];
  return new MfpError(code, message, { cause: err });
}
