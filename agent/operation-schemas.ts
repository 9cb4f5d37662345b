/**
 * The administrator operations as data (STYLE 13): for each, its name (the control method), a summary,
 * whether it changes state, the schema of its parameters (TypeBox: the same library as the item
 * schemas), what it answers and which error codes it may answer. The one place they are written: the
 * control socket, the Remote UI's HTTP API and the shell are adapters over this table, and docs/api.md
 * is generated from it.
 *
 * The agent does not load this module (nor TypeBox, about 12 MB of resident memory): `npm run gen`
 * compiles the parameter schemas ahead of time into agent/operation-checks.gen.ts, which
 * agent/operations.ts uses; test/agent/operations.test.ts fails while that file is stale.
 */
import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import type { ErrorCode } from '../protocol/errors.js';
import { MAX_NAME_BYTES } from '../protocol/limits.js';
import { ROLES } from './config.js';

/** One operation's declaration. */
export interface OperationSpec {
  summary: string;
  /** Whether it changes state (a Remote UI page sends it with a CSRF token; a GET never runs it). */
  mutates: boolean;
  /** Its parameters: an object; `null` for an optional parameter is the same as leaving it out. */
  params: TObject;
  /** What it answers, in words (the shapes are the result types of agent/services/). */
  result: string;
  /** The error codes it may answer besides INVALID_ARGUMENT (which every operation may). */
  errors: readonly ErrorCode[];
  /** Logged in the sync log (code ADMIN) whenever it is requested. */
  audit?: boolean;
  /** The shell command that runs it. */
  shell: string;
}

const Opt = Type.Optional;
/** A user name, a group id or a device id (entity names are bounded in bytes, checked by the agent). */
const Name = (description: string) => Type.String({ minLength: 1, maxLength: MAX_NAME_BYTES, description });
/** A partial, case-insensitive match; blank matches everything. */
const Search = (description: string) => Type.String({ maxLength: 256, description });
const Account = (who: string) => ({
  user: Type.String({ maxLength: MAX_NAME_BYTES, description: `${who} user id` }),
  password: Type.String({ maxLength: 1024, description: `${who} password` }),
});
const AbsolutePath = (description: string) => Type.String({ minLength: 1, maxLength: 4096, pattern: '^/', description: `${description} (an absolute path)` });
const Names = (description: string) => Type.Array(Name(description), { maxItems: 1000 });
const Enum = <T extends string>(values: readonly T[], description: string) => Type.Union(values.map((v) => Type.Literal(v)), { description });
// Checked by the agent, whose refusal names the manual's lists: `personal` or `groups`.
const AddressList = Opt(Type.String({ maxLength: 16, description: 'only address lists: `personal` ([Personal Address List (All)]) or `groups` ([User Group Address List (All)])' }));
const None = Type.Object({}, { additionalProperties: false });
const Params = <T extends TProperties>(properties: T) => Type.Object(properties, { additionalProperties: false });

/** Every operation, by name. */
export const OPERATION_SPECS = {
  status: {
    summary: 'A one-look summary of this machine: identity, role, port, client link, group, health and why.',
    mutates: false,
    params: None,
    result: '`{deviceId, name, serial, location, software, protocol, role, port?, client?, group?, localUsers, health, healthReasons}`',
    errors: [],
    shell: 'mfpsync status',
  },
  'role.set': {
    summary: 'Switches this machine\'s role (SPEC §1); becoming a client admits it with the server\'s administrator account and waits for the join; without `server` the server is searched for on the LAN (SPEC §13).',
    mutates: true,
    params: Params({
      role: Enum(ROLES, 'the new role'),
      server: Opt(Type.String({ minLength: 1, maxLength: 300, description: 'for a client: the server, HOST[:PORT] or [IPv6]:PORT' })),
      user: Opt(Account('the server\'s administrator').user),
      password: Opt(Account('the server\'s administrator').password),
      force: Opt(Type.Boolean({ description: 'stop serving although clients are connected' })),
      searchDepth: Opt(Type.Integer({ minimum: 1, maximum: 255, description: 'for a client without `server`: the search\'s multicast hop limit (1: the same router)' })),
    }),
    result: 'the `status` after the change',
    errors: ['USAGE', 'CLIENTS_ACTIVE', 'REPLICATION_RUNNING', 'CLOCK_NOT_SET', 'ADDRESS_INCORRECT', 'SERVER_AMBIGUOUS', 'AUTH_INCORRECT', 'AUTH_LOCKED', 'AUTH_SETTINGS_MISMATCH', 'GROUP_FULL', 'DEVICE_REMOVED', 'GROUP_KEY_CHANGED', 'GROUP_MISMATCH', 'PROTOCOL_UNSUPPORTED', 'NOT_A_SERVER'],
    audit: true,
    shell: 'mfpsync role set ROLE',
  },
  login: {
    summary: 'A user logged in on this machine\'s panel: their current data is fetched from the server (SPEC §3.2).',
    mutates: true,
    params: Params({ user: Name('the user name') }),
    result: '`{user, loggedIn: true}`',
    errors: [],
    shell: 'mfpsync login USER',
  },
  logout: {
    summary: 'A user logged out of this machine\'s panel.',
    mutates: true,
    params: Params({ user: Name('the user name') }),
    result: '`{user, loggedIn: false}`',
    errors: [],
    shell: 'mfpsync logout USER',
  },
  'item.get': {
    summary: 'Reads one item of a user, a user group or the device, or all of them (catalog defaults where unset).',
    mutates: false,
    params: Params({
      kind: Enum(['user', 'group', 'device'] as const, 'whose items'),
      id: Opt(Type.String({ maxLength: MAX_NAME_BYTES, description: 'the user name or group id (blank for the device)' })),
      item: Opt(Type.String({ minLength: 1, maxLength: 64, description: 'one item (all when left out)' })),
    }),
    result: '`{kind, id, items: {NAME: {value, version, set}}}`',
    errors: ['UNKNOWN_ITEM', 'NOT_FOUND'],
    shell: 'mfpsync user get USER [ITEM]',
  },
  'item.set': {
    summary: 'Writes an item on this machine; on a client it is queued durably and sent to the server.',
    mutates: true,
    params: Params({
      kind: Enum(['user', 'group', 'device'] as const, 'whose item'),
      id: Opt(Type.String({ maxLength: MAX_NAME_BYTES, description: 'the user name or group id (blank for the device)' })),
      item: Type.String({ minLength: 1, maxLength: 64, description: 'the item' }),
      value: Type.Unknown({ description: 'the new value, checked against the item\'s schema' }),
    }),
    result: '`{version, queued, change?}`',
    errors: ['UNKNOWN_ITEM', 'VALUE_TOO_LARGE', 'WRONG_ROLE', 'USER_LIMIT_REACHED', 'STORE_WRITE_FAILED'],
    shell: 'mfpsync user set USER ITEM JSON',
  },
  'users.list': {
    summary: 'Users and user groups, filtered by partial match on the user name or group id (blank lists all).',
    mutates: false,
    params: Params({
      search: Opt(Search('partial match on user name or group id')),
      checksums: Opt(Type.Boolean({ description: 'add each entry\'s content checksum' })),
    }),
    result: '`{users: [{kind, id, lastUsed, items, checksum?}]}`',
    errors: [],
    shell: 'mfpsync users list',
  },
  'users.delete': {
    summary: 'Delete User Data (SPEC §8): across the group on a server, this machine\'s copy on a client (or with `local`).',
    mutates: true,
    params: Params({
      users: Opt(Names('a user name')),
      groups: Opt(Names('a user group id')),
      search: Opt(Search('delete everything this partial match lists')),
      local: Opt(Type.Boolean({ description: 'this machine\'s copy only (a server-client\'s own client part)' })),
    }),
    result: '`{deleted: [id]}`',
    errors: ['WRONG_ROLE'],
    audit: true,
    shell: 'mfpsync users delete USER… --yes',
  },
  'devices.list': {
    summary: 'Confirm Device Information (SPEC §8): the group\'s machines, filtered by partial match on id, name, serial or location.',
    mutates: false,
    params: Params({ filter: Opt(Search('partial match on device id, name, serial number or location')) }),
    result: '`{devices: [{id, name, serial, location, state, session, lastHeartbeat, version, protocol, skewMs, cursorLag, lastChange, processedChanges, sent}]}`',
    errors: ['WRONG_ROLE'],
    shell: 'mfpsync devices list',
  },
  'devices.remove': {
    summary: 'Removes a client from the group: its slot is freed and it is refused until re-admitted.',
    mutates: true,
    params: Params({ id: Name('the device id') }),
    result: '`{removed: id}`',
    errors: ['WRONG_ROLE', 'NOT_FOUND'],
    shell: 'mfpsync devices remove ID --yes',
  },
  export: {
    summary: 'Exports personalized data to one file, written atomically (SPEC §7); refused while client synchronization runs outside an export window.',
    mutates: false,
    params: Params({ path: AbsolutePath('the file to write'), addressList: AddressList }),
    result: '`{path, bytes, createdAt, selection, addressList?, counts, window?}`',
    errors: ['SYNC_RESTRICTED', 'WRONG_ROLE', 'EXPORT_FAILED'],
    shell: 'mfpsync export --out FILE',
  },
  'export.prepare': {
    summary: 'Prepare for User Data Export (SPEC §7): brings up to 500 users and 50 user groups up to date and opens a 15-minute export window.',
    mutates: true,
    params: Params({ users: Opt(Names('a user name')), groups: Opt(Names('a user group id')) }),
    result: '`{users, groups, endsAt, remainingMs, warning}`',
    errors: ['WRONG_ROLE', 'NOT_FOUND', 'PREPARE_INCOMPLETE'],
    shell: 'mfpsync export prepare',
  },
  import: {
    summary: 'Imports an export file, verified whole first; each item it holds replaces the item of the same name.',
    mutates: true,
    params: Params({ path: AbsolutePath('the file to read'), addressList: AddressList }),
    result: '`{path, source, createdAt, software, addressList?, counts, applied, conflicts}`',
    errors: ['IMPORT_INVALID', 'SYNC_RESTRICTED', 'WRONG_ROLE'],
    shell: 'mfpsync import FILE',
  },
  'conflicts.list': {
    summary: 'The conflict log: this machine\'s, and the group\'s on a server.',
    mutates: false,
    params: None,
    result: '`{conflicts: [{at, e, n, …, log}]}`',
    errors: [],
    shell: 'mfpsync conflicts',
  },
  'sharing.list': {
    summary: 'Data Sharing Details (SPEC §4): Shared across All Devices or Device-Specific, per configurable item.',
    mutates: false,
    params: None,
    result: '`{items: [{item, scope}], version}`',
    errors: [],
    shell: 'mfpsync sharing list',
  },
  'sharing.set': {
    summary: 'Sets an item\'s scope, on a server with no client connected; values the change resets are reset.',
    mutates: true,
    params: Params({
      item: Type.String({ minLength: 1, maxLength: 64, description: 'a scope-configurable item' }),
      scope: Enum(['shared', 'device'] as const, 'Shared across All Devices, or Device-Specific (Not Shared)'),
    }),
    result: '`{items, version, reset}`',
    errors: ['UNKNOWN_ITEM', 'WRONG_ROLE', 'CLIENTS_ACTIVE'],
    audit: true,
    shell: 'mfpsync sharing set ITEM SCOPE',
  },
  'replication.start': {
    summary: 'Pairs with a replica (its administrator account), makes the first copy now and schedules the next ones (SPEC §9).',
    mutates: true,
    params: Params({
      to: Type.String({ minLength: 1, maxLength: 300, description: 'the replica, HOST[:PORT]' }),
      ...Account('the replica\'s administrator'),
      interval: Opt(Type.Number({ minimum: 0.01, maximum: 10080, description: 'minutes between copies' })),
      threshold: Opt(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'a copy starts after this many changes' })),
    }),
    result: 'the replication status: `{state, message, to, intervalMinutes, threshold, …}`',
    errors: ['WRONG_ROLE', 'STOP_REPLICATION_FIRST', 'REPLICATION_RUNNING', 'ADDRESS_INCORRECT', 'AUTH_INCORRECT', 'AUTH_LOCKED', 'DEST_UNSUPPORTED'],
    shell: 'mfpsync replication start --to HOST --user ID --password PW',
  },
  'replication.stop': {
    summary: 'Stops replication, forgets the destination and releases it.',
    mutates: true,
    params: None,
    result: '`{stopped, released, to?, message}`',
    errors: [],
    shell: 'mfpsync replication stop',
  },
  'replication.status': {
    summary: 'A server\'s replication schedule and last run, or what a replica last received, with the manual\'s status message.',
    mutates: false,
    params: None,
    result: 'on a server `{state, message, to, …, lastRun}`; on a replica `{role: "replica", message, relation, last}`',
    errors: [],
    shell: 'mfpsync replication status',
  },
  backup: {
    summary: 'Backs the group\'s data up to the device slot, an SMB share or a folder (SPEC §10).',
    mutates: true,
    params: Params({
      to: Type.String({ minLength: 1, maxLength: 4096, description: '`device`, `smb://HOST/SHARE/DIR` or an absolute folder' }),
      user: Opt(Type.String({ maxLength: 256, description: 'the share\'s user (network backup)' })),
      password: Opt(Type.String({ maxLength: 1024, description: 'the share\'s password (network backup)' })),
    }),
    result: '`{destination, path?, bytes, seq, counts}`',
    errors: ['WRONG_ROLE', 'REPLICATION_RUNNING', 'USAGE', 'DBBU01', 'DBBU02', 'DBBU03', 'DBBU04', 'DBBU05', 'DBBU06'],
    shell: 'mfpsync backup --to device',
  },
  restore: {
    summary: 'Restores a backup, verified whole before anything changes, on a server with no client connected.',
    mutates: true,
    params: Params({
      from: Type.String({ minLength: 1, maxLength: 4096, description: '`device`, `smb://HOST/SHARE/DIR[/FILE.mfpb]` or an absolute path' }),
      user: Opt(Type.String({ maxLength: MAX_NAME_BYTES, description: 'the group administrator\'s user id as at the backup' })),
      password: Opt(Type.String({ maxLength: 1024, description: 'the group administrator\'s password as at the backup' })),
      shareUser: Opt(Type.String({ maxLength: 256, description: 'the share\'s user (network restore)' })),
      sharePassword: Opt(Type.String({ maxLength: 1024, description: 'the share\'s password (network restore)' })),
    }),
    result: '`{source, seq, createdAt, counts, format, admits, sealedFor}`',
    errors: ['WRONG_ROLE', 'CLIENTS_ACTIVE', 'REPLICATION_RUNNING', 'USAGE', 'AUTH_INCORRECT', 'DBRS01', 'DBRS02', 'DBRS03', 'DBRS04'],
    shell: 'mfpsync restore --from device',
  },
  'backup.log': {
    summary: 'The execution log: every backup, restore and recovery, oldest first.',
    mutates: false,
    params: None,
    result: '`{runs: [{at, op, place, result, message, bytes?, seq?}]}`',
    errors: [],
    shell: 'mfpsync backup log',
  },
  recover: {
    summary: 'Recovery Using Replicated Data: without `confirm` shows the replica\'s time; with it loads the replica\'s image as this server\'s group.',
    mutates: true,
    params: Params({
      from: Type.String({ minLength: 1, maxLength: 300, description: 'the replica, HOST[:PORT]' }),
      ...Account('the replica\'s administrator'),
      confirm: Opt(Type.Boolean({ description: 'load the image (else only show what the replica holds)' })),
    }),
    result: '`{loaded, replica: {at, seq, …}, bytes?}`',
    errors: ['WRONG_ROLE', 'CLIENTS_ACTIVE', 'REPLICATION_RUNNING', 'ADDRESS_INCORRECT', 'AUTH_INCORRECT', 'AUTH_LOCKED'],
    shell: 'mfpsync recover --from HOST --user ID --password PW',
  },
  'power.status': {
    summary: 'Deep sleep and heartbeats: on a server whether deep sleep is blocked and by which clients; on a client its own link.',
    mutates: false,
    params: None,
    result: '`{role, asleep, deepSleepBlocked, blockedBy, heartbeatSeconds, timeoutMs, clients?, client?}`',
    errors: [],
    shell: 'mfpsync power status',
  },
  'power.sleep': {
    summary: 'This machine goes to sleep: its client part tells the server and keeps no session or timer until woken.',
    mutates: true,
    params: None,
    result: 'the `power.status` after it',
    errors: [],
    shell: 'mfpsync power sleep',
  },
  'power.wake': {
    summary: 'This machine woke up: its client part reconnects and resumes by cursor.',
    mutates: true,
    params: None,
    result: 'the `power.status` after it',
    errors: [],
    shell: 'mfpsync power wake',
  },
  'settings.applyDuringLogin': {
    summary: '[Allow custom settings to be applied during operation] (SPEC §3.5): read it, or set it (kept across restarts).',
    mutates: true,
    params: Params({ value: Opt(Enum(['immediate', 'next-login'] as const, 'immediate: a logged-in user\'s changed language/accessibility applies at once; next-login: at their next login')) }),
    result: '`{applyDuringLogin}`',
    errors: [],
    audit: true,
    shell: 'mfpsync settings apply-during-login [immediate|next-login]',
  },
  log: {
    summary: 'The sync log at or above a level (the Warning and Error filters of the manual).',
    mutates: false,
    params: Params({ level: Opt(Enum(['info', 'warning', 'error'] as const, 'the lowest level shown (default info: everything)')) }),
    result: '`{entries: [{at, level, code, message, …}]}`',
    errors: [],
    shell: 'mfpsync log --level warning',
  },
} as const satisfies Record<string, OperationSpec>;

/** An operation's name (its control method). */
export type OperationName = keyof typeof OPERATION_SPECS;

/** The parameters of an operation, as its schema admits them. */
export type ParamsOf<N extends OperationName> = Static<(typeof OPERATION_SPECS)[N]['params']>;
