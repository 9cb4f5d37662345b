/**
 * The agent's typed events (kebab-case names): what firmware follows through the library, `run --events`
 * prints and the control socket's `events.subscribe` streams.
 */
import type { ItemKind } from '../storage/catalog.js';
import type { AckSummary, ClientState, JoinProgress, LoginAgainEvent, SentSummary } from './client.js';
import type { Role } from './config.js';
import type { DeepSleepState, PowerState } from './power.js';
import type { ReplicatedRecord } from './replication.js';

/** Emitted when an item's value changes on this machine. */
export interface ItemChangedEvent {
  kind: ItemKind;
  id: string;
  item: string;
  /** `local`: written on this machine; `remote`: arrived from the group. */
  source: 'local' | 'remote';
  /** False when the user is logged in and the option defers language/accessibility to the next login. */
  applyNow: boolean;
}

/** Emitted when the synchronization state changes. */
export interface SyncStateEvent {
  role: Role;
  state: ClientState | 'serving' | 'standalone';
  error?: { code: string; message: string };
}

/** Emitted on a client while it joins (or resyncs by checksum): how much of the server's copy arrived. */
export type JoinProgressEvent = JoinProgress;

/** Emitted on a server when whether its deep sleep is blocked, or by which clients, changes (SPEC §5). */
export type DeepSleepEvent = DeepSleepState;

/** Emitted on a server when a client becomes operating, sleeping or offline. */
export interface DeviceStateEvent {
  deviceId: string;
  name: string;
  state: PowerState;
  lastHeartbeat: number | null;
}

/** The agent's events (kebab-case names). */
export interface AgentEvents {
  'item-changed': [ItemChangedEvent];
  /** On a replica: a replication run was installed. */
  replicated: [ReplicatedRecord];
  'entity-deleted': [{ kind: ItemKind; id: string }];
  'sync-state': [SyncStateEvent];
  /** The server acknowledged changes of this machine (`queued`: how many still wait). */
  'changes-acked': [AckSummary];
  /** A frame of this machine's queued changes left for the server (flow control: at most the window in flight). */
  'changes-sent': [SentSummary];
  /** A join is under way: the plan's entities received so far, of how many, and the bytes. */
  'join-progress': [JoinProgressEvent];
  /** Deep sleep became blocked or released, or the set of clients blocking it changed. */
  'deep-sleep': [DeepSleepEvent];
  /** A client of this server became operating, sleeping or offline. */
  'device-state': [DeviceStateEvent];
  /** On a client: a logging-in user could not be given current data and must log in again, or a login repaired it. */
  'login-again': [LoginAgainEvent];
}

/** Every event, with what it says and its payload's fields (docs/api.md is generated from these). */
export const AGENT_EVENT_DOCS = {
  'item-changed': 'an item\'s value changed on this machine: `kind`, `id`, `item`, `source` (`local` or `remote`), `applyNow` (false when a logged-in user\'s language or accessibility waits for the next login)',
  'entity-deleted': 'a user\'s or user group\'s data was deleted on this machine: `kind`, `id`',
  'sync-state': 'the synchronization state changed: `role`, `state` (a client\'s link state, `serving` or `standalone`), `error?` `{code, message}`',
  'changes-acked': 'the server acknowledged changes of this machine: `applied`, `duplicates`, `conflicts`, `rejected`, `queued` (how many still wait), `changes` `[{c, status, v?}]`',
  'changes-sent': 'a frame of this machine\'s queued changes left for the server: `changes` (their counters), `inFlight` (sent and not acknowledged, at most the flow-control window, 16 changes), `queued` (in the durable queue, those in flight included)',
  'join-progress': 'a join (or a resync by checksum) is under way: `phase` (`waiting`, `receiving`, `applying`, `done`), `entities`, `total`, `bytes`',
  'deep-sleep': 'on a server, deep sleep became blocked or released, or the clients blocking it changed: `blocked`, `blockedBy`',
  'device-state': 'on a server, a client became operating, sleeping or offline: `deviceId`, `name`, `state`, `lastHeartbeat`',
  replicated: 'on a replica, a replication run was installed: `at`, `seq`, `entries`, `groupId`, `counts`, `source` `{deviceId, name}`',
  'login-again': 'on a client, a logging-in user must log in again (`user`, `required: true`, `reason`, `message`, `detail`), or a later login repaired it (`user`, `required: false`)',
} as const satisfies Record<keyof AgentEvents, string>;

/** Every event name, in the order `run --events` documents them. */
export const AGENT_EVENT_NAMES = Object.keys(AGENT_EVENT_DOCS) as (keyof AgentEvents)[];
