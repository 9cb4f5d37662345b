/**
 * The running agent as a process: the Agent plus its control socket, and the mapping of control
 * methods to Agent calls. Parameters are checked here; a wrong one is INVALID_ARGUMENT.
 */
import { isAbsolute } from 'node:path';
import { MfpError } from '../protocol/errors.js';
import type { ItemKind } from '../storage/catalog.js';
import type { AddressListKind } from '../storage/export-file.js';
import type { LogLevel } from '../storage/store.js';
import { Agent, type AgentOptions, type Role } from './agent.js';
import { dataPaths } from './config.js';
import { ControlServer } from './control.js';
import { startRemoteUi, type RemoteUi, type RemoteUiSettings } from './remote-ui/index.js';

type Params = Record<string, unknown>;

function opt(p: Params, name: string): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new MfpError('INVALID_ARGUMENT', `${name} must be a string`);
  return v;
}

function req(p: Params, name: string): string {
  const v = opt(p, name);
  if (v === undefined) throw new MfpError('INVALID_ARGUMENT', `${name} is required`);
  return v;
}

function strings(p: Params, name: string): string[] | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new MfpError('INVALID_ARGUMENT', `${name} must be a list of strings`);
  return v as string[];
}

/** A file path for the agent: absolute, since the agent's working directory is not the shell's. */
function absolutePath(p: Params): string {
  const path = req(p, 'path');
  if (!isAbsolute(path)) throw new MfpError('INVALID_ARGUMENT', `path must be absolute: ${JSON.stringify(path)}`);
  return path;
}

/** The `addressList` parameter of export and import (checked by the agent). */
function addressListOf(p: Params): { addressList?: AddressListKind } {
  return p.addressList === undefined || p.addressList === null ? {} : { addressList: p.addressList as AddressListKind };
}

function kindOf(p: Params): ItemKind {
  const kind = req(p, 'kind');
  if (kind !== 'user' && kind !== 'group' && kind !== 'device') throw new MfpError('INVALID_ARGUMENT', 'kind must be user, group or device');
  return kind;
}

/** The control methods: one per shell command that talks to the running agent. */
export function controlMethods(agent: Agent): Record<string, (p: Params) => Promise<unknown> | unknown> {
  return {
    status: () => agent.status(),
    'role.set': (p) => {
      const role = req(p, 'role') as Role;
      agent.log.info('ADMIN', `role set ${role} requested through the control socket`);
      const options: { server?: string; user?: string; password?: string; force?: boolean } = { force: p.force === true };
      const server = opt(p, 'server');
      const user = opt(p, 'user');
      const password = opt(p, 'password');
      if (server !== undefined) options.server = server;
      if (user !== undefined) options.user = user;
      if (password !== undefined) options.password = password;
      return agent.setRole(role, options);
    },
    login: async (p) => {
      await agent.login(req(p, 'user'));
      return { user: p.user, loggedIn: true };
    },
    logout: async (p) => {
      await agent.logout(req(p, 'user'));
      return { user: p.user, loggedIn: false };
    },
    'item.get': (p) => agent.getItems(kindOf(p), opt(p, 'id') ?? '', opt(p, 'item')),
    'item.set': (p) => {
      if (!('value' in p)) throw new MfpError('INVALID_ARGUMENT', 'value is required');
      return agent.setItem(kindOf(p), opt(p, 'id') ?? '', req(p, 'item'), p.value);
    },
    'users.list': (p) => ({ users: agent.listUsers(opt(p, 'search') ?? '', { checksums: p.checksums === true }) }),
    'users.delete': (p) => {
      agent.log.info('ADMIN', 'users delete requested through the control socket');
      const t: { users?: string[]; groups?: string[]; search?: string; local?: boolean } = {};
      const users = strings(p, 'users');
      const groups = strings(p, 'groups');
      const search = opt(p, 'search');
      if (users) t.users = users;
      if (groups) t.groups = groups;
      if (search !== undefined) t.search = search;
      if (p.local === true) t.local = true;
      return agent.deleteUsers(t);
    },
    'devices.list': (p) => ({ devices: agent.listDevices(opt(p, 'filter') ?? '') }),
    'devices.remove': (p) => agent.removeDevice(req(p, 'id')),
    export: (p) => agent.exportData(absolutePath(p), addressListOf(p)),
    'export.prepare': (p) => {
      const selection: { users?: string[]; groups?: string[] } = {};
      const users = strings(p, 'users');
      const groups = strings(p, 'groups');
      if (users) selection.users = users;
      if (groups) selection.groups = groups;
      return agent.prepareExport(selection);
    },
    import: (p) => agent.importData(absolutePath(p), addressListOf(p)),
    'conflicts.list': async () => ({ conflicts: await agent.conflicts() }),
    'sharing.list': () => agent.sharingList(),
    'sharing.set': (p) => {
      agent.log.info('ADMIN', 'sharing set requested through the control socket');
      return agent.setSharing(req(p, 'item'), req(p, 'scope'));
    },
    'replication.start': (p) => {
      const intervalMinutes = p.interval === undefined || p.interval === null ? undefined : Number(p.interval);
      const threshold = p.threshold === undefined || p.threshold === null ? undefined : Number(p.threshold);
      return agent.replicationStart({ to: req(p, 'to'), user: req(p, 'user'), password: req(p, 'password'), intervalMinutes, threshold });
    },
    'replication.stop': () => agent.replicationStop(),
    'replication.status': () => agent.replicationStatus(),
    backup: (p) => agent.backup({ to: req(p, 'to'), user: opt(p, 'user'), password: opt(p, 'password') }),
    restore: (p) => agent.restore({ from: req(p, 'from'), user: opt(p, 'user'), password: opt(p, 'password'), shareUser: opt(p, 'shareUser'), sharePassword: opt(p, 'sharePassword') }),
    'backup.log': () => agent.backupLogList(),
    recover: (p) => agent.recover({ from: req(p, 'from'), user: req(p, 'user'), password: req(p, 'password'), confirm: p.confirm === true }),
    'power.status': () => agent.power(),
    'power.sleep': () => agent.sleep(),
    'power.wake': () => agent.wake(),
    log: async (p) => {
      const level = (opt(p, 'level') ?? 'info') as LogLevel;
      if (!['info', 'warning', 'error'].includes(level)) throw new MfpError('INVALID_ARGUMENT', 'level must be warning or error');
      return { entries: await agent.syncLog(level) };
    },
  };
}

/** A started agent with its control socket. */
export interface Daemon {
  agent: Agent;
  control: ControlServer;
  /** The Remote UI, unless its port is 0. */
  ui: RemoteUi | undefined;
  stop(): Promise<void>;
}

/** Opens the data directory, starts the control socket and the persisted role. */
export async function startDaemon(options: AgentOptions & RemoteUiSettings): Promise<Daemon> {
  const agent = await Agent.open(options);
  const methods = controlMethods(agent);
  const invoke = async (method: string, params: Params) => {
    const m = Object.hasOwn(methods, method) ? methods[method] : undefined;
    if (!m) throw new MfpError('INVALID_ARGUMENT', `unknown control method ${JSON.stringify(method)}`);
    return m(params);
  };
  const control = new ControlServer(dataPaths(options.dataDir).control, invoke);
  let ui: RemoteUi | undefined;
  try {
    await control.start();
    await agent.start();
    // The Remote UI: the same operations as the control socket, over HTTPS.
    ui = await startRemoteUi({ agent, invoke, host: options.host, uiPort: options.uiPort, uiIdleMs: options.uiIdleMs });
  } catch (err) {
    await control.stop();
    await agent.close();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    agent,
    control,
    ui,
    stop: () =>
      (stopping ??= (async () => {
        await ui?.stop();
        await control.stop();
        await agent.close();
      })()),
  };
}
