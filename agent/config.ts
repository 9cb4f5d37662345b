/**
 * The data directory: what `init` creates and every command reads.
 *
 *   DIR/config.json               identity (secret key), name, serial, location, admin account (hashed),
 *                                 authentication settings — mode 0600
 *   DIR/initial-admin-password    only when init generated the password — mode 0600
 *   DIR/local/                    this machine's LevelDB store
 *   DIR/group/                    the group's LevelDB store (on a server)
 *   DIR/control.sock              the control socket of the running agent — mode 0600
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { dataDirError, MfpError } from '../protocol/errors.js';
import { canonicalDepartmentId, departmentIdsDigest, MAX_DEPARTMENT_IDS, type AuthSettings } from '../protocol/session.js';
import { createIdentity, identityFromSecret, makeAdminSecret, type AdminSecret, type Identity } from './identity.js';

/** This build's software version, as devices report it. */
export const SOFTWARE_VERSION = '0.1.0';

/** The roles a machine can have (SPEC §2). */
export const ROLES = ['standalone', 'server', 'server-client', 'client', 'replica'] as const;
export type Role = (typeof ROLES)[number];

/** Whether `init` has made this data directory. */
export function isInitialized(dataDir: string): boolean {
  return existsSync(dataPaths(dataDir).config);
}

/** What config.json holds. */
export interface AgentConfig {
  format: 1;
  secretKey: string;
  name: string;
  serial: string;
  location: string;
  admin: AdminSecret;
  /** As read: its `departmentIdsDigest` is always the digest of `departmentIdList`. */
  settings: AuthSettings;
  /**
   * The Department IDs registered on this machine (canonical, sorted), compared across the group by
   * their digest. Absent in a directory made before lists: the empty set.
   */
  departmentIdList?: string[];
  createdAt: number;
}

/** Paths inside a data directory. */
export function dataPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'config.json'),
    initialPassword: join(dir, 'initial-admin-password'),
    local: join(dir, 'local'),
    group: join(dir, 'group'),
    control: join(dir, 'control.sock'),
  };
}

/** The data directory a command uses: --data, else $MFPSYNC_DATA, else ./.mfpsync. */
export function resolveDataDir(flag?: string): string {
  return flag ?? process.env.MFPSYNC_DATA ?? '.mfpsync';
}

/** Options of `init`. */
export interface InitOptions {
  name?: string;
  serial?: string;
  location?: string;
  adminUser?: string;
  adminPassword?: string;
  settings?: Partial<Pick<AuthSettings, 'loginService' | 'departmentIds'>>;
  /** The Department IDs registered on this machine (1-7 digits each); needs Department ID management on. */
  departmentIdList?: readonly string[];
}

/** Result of `init`. */
export interface InitResult {
  dataDir: string;
  deviceId: string;
  name: string;
  adminUser: string;
  /** Where the generated administrator password was written, when none was given. */
  passwordFile?: string;
  /** How many Department IDs were registered, when a list was given. */
  departmentIds?: number;
}

/** Creates a data directory with a fresh identity. Refuses if one exists. */
export function initDataDir(dir: string, options: InitOptions = {}): InitResult {
  const paths = dataPaths(dir);
  if (existsSync(paths.config)) throw new MfpError('ALREADY_INITIALIZED', `${dir} already holds an identity`);
  const adminUser = options.adminUser ?? 'admin';
  if (!adminUser || adminUser.length > 128) throw new MfpError('INVALID_ARGUMENT', 'the administrator user id must be 1-128 characters');
  if (options.adminPassword !== undefined && options.adminPassword.length === 0) {
    throw new MfpError('INVALID_ARGUMENT', 'the administrator password must not be empty');
  }
  const departmentIds = options.settings?.departmentIds ?? false;
  const departmentIdList = checkDepartmentIds(options.departmentIdList ?? [], departmentIds);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (err) {
    throw dataDirError(realMkdirError(dir, err), dir, 'make the data directory') ?? err;
  }
  const identity = createIdentity();
  const password = options.adminPassword ?? randomBytes(9).toString('base64url');
  const config: AgentConfig = {
    format: 1,
    secretKey: Buffer.from(identity.secretKey).toString('base64'),
    name: options.name ?? hostname(),
    serial: options.serial ?? '',
    location: options.location ?? '',
    admin: makeAdminSecret(adminUser, password),
    settings: { loginService: options.settings?.loginService ?? 'user-authentication', departmentIds },
    ...(departmentIdList.length > 0 ? { departmentIdList } : {}),
    createdAt: Date.now(),
  };
  let passwordFile: string | undefined;
  try {
    if (options.adminPassword === undefined) {
      writeFileSync(paths.initialPassword, password + '\n', { mode: 0o600 });
      passwordFile = paths.initialPassword;
    }
    writeConfig(dir, config);
  } catch (err) {
    throw dataDirError(err, dir, 'write the identity into') ?? err;
  }
  return { dataDir: dir, deviceId: identity.deviceId, name: config.name, adminUser, ...(passwordFile ? { passwordFile } : {}), ...(departmentIdList.length > 0 ? { departmentIds: departmentIdList.length } : {}) };
}

/**
 * A recursive mkdir reports ENOENT where the cause is another (a read-only filesystem): the parent's
 * own mkdir says which.
 */
function realMkdirError(dir: string, err: unknown): unknown {
  if ((err as { code?: string }).code !== 'ENOENT') return err;
  let first = dir;
  while (dirname(first) !== first && !existsSync(dirname(first))) first = dirname(first);
  try {
    mkdirSync(first);
    return err;
  } catch (real) {
    return real;
  }
}

/** Writes config.json atomically. */
export function writeConfig(dir: string, config: AgentConfig): void {
  const paths = dataPaths(dir);
  const tmp = `${paths.config}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, paths.config);
}

/** Reads config.json and the identity in it. */
export function readConfig(dir: string): { config: AgentConfig; identity: Identity } {
  const paths = dataPaths(dir);
  let text: string;
  try {
    text = readFileSync(paths.config, 'utf8');
  } catch (err) {
    const denied = (err as { code?: string }).code === 'ENOENT' ? undefined : dataDirError(err, paths.config, 'read');
    if (denied) throw denied;
    throw new MfpError('NOT_INITIALIZED', `${dir} holds no identity: run \`mfpsync init --name NAME\``);
  }
  try {
    const config = JSON.parse(text) as AgentConfig;
    // The digest is derived, never trusted from the file: a directory made before lists has none.
    config.settings = { ...config.settings, departmentIdsDigest: departmentIdsDigest(config.departmentIdList ?? []) };
    return { config, identity: identityFromSecret(Buffer.from(config.secretKey, 'base64')) };
  } catch (err) {
    throw new MfpError('STORE_CORRUPT', `${paths.config} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The Department IDs as registered: each canonical (1-7 digits, leading zeros dropped), no repeats,
 * sorted, at most MAX_DEPARTMENT_IDS. A list needs Department ID management on (off, no ID is used).
 */
export function checkDepartmentIds(ids: readonly string[], managementOn: boolean): string[] {
  if (ids.length > 0 && !managementOn) {
    throw new MfpError('INVALID_ARGUMENT', 'a Department ID list needs Department ID management on (--department-ids on)');
  }
  const out = new Set<string>();
  for (const [i, text] of ids.entries()) {
    const id = canonicalDepartmentId(text);
    if (id === undefined) throw new MfpError('INVALID_ARGUMENT', `Department ID ${i + 1} (${JSON.stringify(text.slice(0, 32))}) is not 1-7 digits`);
    out.add(id);
  }
  if (out.size > MAX_DEPARTMENT_IDS) throw new MfpError('INVALID_ARGUMENT', `at most ${MAX_DEPARTMENT_IDS} Department IDs can be registered; the list holds ${out.size}`);
  return [...out].sort((a, b) => Number(a) - Number(b));
}

/**
 * Reads a Department ID list file: one ID per line (commas separate too); blank lines and lines
 * starting with `#` are skipped. A file that cannot be read is INVALID_ARGUMENT.
 */
export function readDepartmentIdFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MfpError('INVALID_ARGUMENT', `cannot read the Department ID list ${path}: ${(err as Error).message}`, { cause: err });
  }
  return text
    .split(/\r?\n/)
    .filter((l) => !l.trim().startsWith('#'))
    .flatMap((l) => l.split(','))
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

/**
 * Changes Department ID management and the registered Department IDs of a data directory (the agent
 * reads them at its start). `list` replaces the registered IDs; absent, they are kept (turning the
 * management off clears them: off, no ID is used).
 */
export function setDepartmentIds(dir: string, options: { on: boolean; list?: readonly string[] }): { departmentIds: boolean; registered: number } {
  const { config } = readConfig(dir);
  const list = checkDepartmentIds(options.list ?? (options.on ? config.departmentIdList ?? [] : []), options.on);
  // The digest is derived at every read: not written.
  const next: AgentConfig = { ...config, settings: { loginService: config.settings.loginService, departmentIds: options.on } };
  if (list.length > 0) next.departmentIdList = list;
  else delete next.departmentIdList;
  writeConfig(dir, next);
  return { departmentIds: options.on, registered: list.length };
}
