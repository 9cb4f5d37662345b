/**
 * The administrator operations, one table (STYLE 13): each operation's declaration (name, summary,
 * parameter schema, result, error codes — agent/operation-schemas.ts, compiled ahead of time into
 * agent/operation-checks.gen.ts so that TypeBox is not loaded at run time) and the one service call
 * that runs it. The control socket, the Remote UI's HTTP API and the shell are adapters over
 * `invoke`; `agentEvents` is the event stream the control socket's `events.subscribe` and
 * `run --events` share.
 */
import type { EventEmitter } from 'node:events';
import type { TObject, TSchema } from '@sinclair/typebox';
import { MfpError, type ErrorCode } from '../protocol/errors.js';
import type { AddressListKind } from '../storage/export-file.js';
import type { Agent } from './agent.js';
import { AGENT_EVENT_NAMES, type AgentEvents } from './events.js';
import { OPERATION_TABLE } from './operation-checks.gen.js';
import type { OperationName, ParamsOf } from './operation-schemas.js';

export type { OperationName, ParamsOf } from './operation-schemas.js';

/** One operation as its adapters and the API reference see it. */
export interface OperationInfo {
  name: OperationName;
  summary: string;
  /** Whether it changes state. */
  mutates: boolean;
  /** Its parameters (a TypeBox object schema, as a plain literal). */
  params: TObject;
  /** What it answers, in words. */
  result: string;
  /** The error codes it may answer besides INVALID_ARGUMENT. */
  errors: readonly ErrorCode[];
  /** Logged in the sync log whenever it is requested. */
  audit: boolean;
  /** The shell command that runs it. */
  shell: string;
}

/** A row of the generated table: the operation and one compiled checker per parameter. */
export interface OperationRow extends OperationInfo {
  checks: Readonly<Record<string, (value: unknown) => boolean>>;
}

/** Every administrator operation. */
export const OPERATIONS: readonly OperationInfo[] = OPERATION_TABLE;

const BY_NAME = new Map<string, OperationRow>(OPERATION_TABLE.map((op) => [op.name, op]));

type Runner<N extends OperationName> = (agent: Agent, p: ParamsOf<N>) => unknown;

/** How each operation runs: one call of one service. */
const RUN: { [N in OperationName]: Runner<N> } = {
  status: (a) => a.services.status.status(),
  'role.set': async (a, p) => {
    await a.services.roles.set(p.role, p);
    return a.services.status.status();
  },
  login: async (a, p) => {
    await a.services.users.login(p.user);
    return { user: p.user, loggedIn: true };
  },
  logout: async (a, p) => {
    await a.services.users.logout(p.user);
    return { user: p.user, loggedIn: false };
  },
  'item.get': (a, p) => a.services.users.getItems(p.kind, p.id ?? '', p.item),
  'item.set': (a, p) => a.services.users.setItem(p.kind, p.id ?? '', p.item, p.value),
  'users.list': (a, p) => ({ users: a.services.users.list(p.search ?? '', { checksums: p.checksums === true }) }),
  'users.delete': (a, p) => a.services.users.delete(p),
  'devices.list': (a, p) => ({ devices: a.services.devices.list(p.filter ?? '') }),
  'devices.remove': (a, p) => a.services.devices.remove(p.id),
  export: (a, p) => a.services.export.exportData(p.path, addressListOf(p)),
  'export.prepare': (a, p) => a.services.export.prepare(p),
  import: (a, p) => a.services.export.importData(p.path, addressListOf(p)),
  'conflicts.list': async (a) => ({ conflicts: await a.services.status.conflicts() }),
  'sharing.list': (a) => a.services.sharing.list(),
  'sharing.set': (a, p) => a.services.sharing.set(p.item, p.scope),
  'replication.start': (a, p) => a.services.replication.start({ to: p.to, user: p.user, password: p.password, intervalMinutes: p.interval, threshold: p.threshold }),
  'replication.stop': (a) => a.services.replication.stop(),
  'replication.status': (a) => a.services.replication.status(),
  backup: (a, p) => a.services.backup.backup(p),
  restore: (a, p) => a.services.backup.restore(p),
  'backup.log': (a) => a.services.backup.logList(),
  recover: (a, p) => a.services.backup.recover({ ...p, confirm: p.confirm === true }),
  'power.status': (a) => a.services.power.status(),
  'power.sleep': (a) => a.services.power.sleep(),
  'power.wake': (a) => a.services.power.wake(),
  'settings.applyDuringLogin': (a, p) => a.services.users.applyDuringLogin(p.value),
  log: async (a, p) => ({ entries: await a.services.status.syncLog(p.level ?? 'info') }),
};

/** The `addressList` parameter of export and import, checked by the agent (its refusal names the manual's lists). */
function addressListOf(p: { addressList?: string }): { addressList?: AddressListKind } {
  return p.addressList === undefined ? {} : { addressList: p.addressList as AddressListKind };
}

/** An operation by name, or INVALID_ARGUMENT naming the ones there are. */
export function operation(name: unknown): OperationInfo {
  return rowOf(name);
}

function rowOf(name: unknown): OperationRow {
  const op = typeof name === 'string' ? BY_NAME.get(name) : undefined;
  if (!op) throw new MfpError('INVALID_ARGUMENT', `unknown operation ${JSON.stringify(name)}; one of ${[...BY_NAME.keys()].join(', ')}`);
  return op;
}

/**
 * Checks an operation's parameters against its schema and returns them without the optional ones
 * given as `null`; a wrong one is INVALID_ARGUMENT naming the parameter and what it must be.
 */
export function checkParams(name: OperationName, params: unknown): Record<string, unknown> {
  const op = rowOf(name);
  const given = params ?? {};
  if (typeof given !== 'object' || Array.isArray(given)) throw new MfpError('INVALID_ARGUMENT', `${op.name}: the parameters must be an object`);
  const properties = op.params.properties as Record<string, TSchema>;
  const required = op.params.required ?? [];
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(given)) {
    if (!Object.hasOwn(properties, k)) {
      const known = Object.keys(properties);
      throw new MfpError('INVALID_ARGUMENT', `${op.name}: unknown parameter ${JSON.stringify(k)}; ${known.length > 0 ? `it takes ${known.join(', ')}` : 'it takes none'}`);
    }
    if (v === null && !required.includes(k)) continue;
    if (!op.checks[k]!(v)) throw new MfpError('INVALID_ARGUMENT', `${op.name}: ${k} must be ${describeSchema(properties[k]!)}`);
    out[k] = v;
  }
  for (const k of required) {
    if (!Object.hasOwn(out, k)) throw new MfpError('INVALID_ARGUMENT', `${op.name}: ${k} is required (${describeSchema(properties[k]!)})`);
  }
  return out;
}

/**
 * Runs an operation: checks its parameters, then calls its service. `via` names the surface in the
 * sync log for the operations that are logged when requested (role, user data, sharing).
 */
export async function invoke(agent: Agent, name: string, params: unknown, options: { via?: string } = {}): Promise<unknown> {
  const op = rowOf(name);
  const p = checkParams(op.name, params);
  if (op.audit) agent.log.info('ADMIN', `${op.name}${op.name === 'role.set' ? ` ${String(p.role)}` : ''} requested through the ${options.via ?? 'control socket'}`);
  return (RUN[op.name] as Runner<OperationName>)(agent, p as ParamsOf<OperationName>);
}

/** What a schema admits, in words: for refusals and for the API reference. */
export function describeSchema(schema: TSchema): string {
  const s = schema as TSchema & Record<string, unknown>;
  if (Array.isArray(s.anyOf)) {
    const consts = (s.anyOf as Record<string, unknown>[]).map((x) => x.const);
    if (consts.every((c) => typeof c === 'string')) return `one of ${consts.map((c) => JSON.stringify(c)).join(', ')}`;
    return (s.anyOf as TSchema[]).map(describeSchema).join(' or ');
  }
  const range = (lo: unknown, hi: unknown, unit: string) =>
    typeof lo === 'number' && typeof hi === 'number' ? ` of ${lo} to ${hi}${unit}` : typeof hi === 'number' ? ` of at most ${hi}${unit}` : typeof lo === 'number' ? ` of at least ${lo}${unit}` : '';
  switch (s.type) {
    case 'string': {
      const pattern = typeof s.pattern === 'string' ? (s.pattern === '^/' ? ', starting with "/"' : `, matching /${s.pattern}/`) : '';
      return `a string${range(s.minLength, s.maxLength, ' characters')}${pattern}`;
    }
    case 'integer':
    case 'number': {
      const what = s.type === 'integer' ? 'an integer' : 'a number';
      if (typeof s.minimum === 'number' && typeof s.maximum === 'number') return `${what} from ${s.minimum} to ${s.maximum}`;
      return typeof s.minimum === 'number' ? `${what} of at least ${s.minimum}` : what;
    }
    case 'boolean':
      return 'true or false';
    case 'array':
      return `a list${range(s.minItems, s.maxItems, ' entries')}, each ${describeSchema(s.items as TSchema)}`;
    case 'object':
      return 'an object';
    default:
      return 'any JSON value';
  }
}

/** One agent event as a JSON line carries it: its name in `event`, then its payload. */
export type AgentEventMessage = { event: keyof AgentEvents } & Record<string, unknown>;

/** The events `agentEvents` streams (all of the agent's). */
export const EVENT_NAMES: readonly (keyof AgentEvents)[] = AGENT_EVENT_NAMES;

/** The events named (all when none are), or INVALID_ARGUMENT naming one that is not an event. */
export function eventFilter(names: unknown): (keyof AgentEvents)[] {
  if (names === undefined || names === null) return [...EVENT_NAMES];
  if (!Array.isArray(names) || names.length > EVENT_NAMES.length * 4) throw new MfpError('INVALID_ARGUMENT', `events must be a list of event names: ${EVENT_NAMES.join(', ')}`);
  for (const n of names) {
    if (!(EVENT_NAMES as readonly unknown[]).includes(n)) throw new MfpError('INVALID_ARGUMENT', `events: ${JSON.stringify(n)} is not an event; one of ${EVENT_NAMES.join(', ')}`);
  }
  return [...new Set(names as (keyof AgentEvents)[])];
}

/**
 * Follows the agent's events: `onEvent` gets each as `{event, ...payload}` (what `run --events`
 * prints). Returns the unsubscribe.
 */
export function agentEvents(agent: Agent, onEvent: (e: AgentEventMessage) => void, names: readonly (keyof AgentEvents)[] = EVENT_NAMES): () => void {
  const emitter = agent as unknown as EventEmitter;
  const offs = names.map((event) => {
    const listener = (payload: object) => onEvent({ event, ...payload });
    emitter.on(event, listener);
    return () => emitter.off(event, listener);
  });
  return () => {
    for (const off of offs) off();
  };
}
