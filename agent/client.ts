/**
 * The client role: keeps one session to the server, joins or resumes, sends the durable queue of local
 * changes, applies the group's deltas, fetches a user's data at login, and reconnects with exponential
 * backoff and full jitter when the server goes away. It works from its local store throughout: the
 * firmware never waits for the network.
 */
import { WebSocket } from 'ws';
import { decodeValue, encodeMessage, encodeValue, wireValue, type Message } from '../protocol/codec.js';
import { MfpError, toMfpError, type ErrorCode } from '../protocol/errors.js';
import { HeartbeatType } from '../protocol/heartbeat.js';
import {
  HANDSHAKE_TIMEOUT_MS, MAX_FRAME_BYTES, MIN_PROTOCOL_VERSION, MISSED_HEARTBEATS, PROTOCOL_VERSION,
  RECONNECT_BASE_MS, RECONNECT_MAX_MS, REFUSALS_REPORTED,
} from '../protocol/limits.js';
import { ReplicationType } from '../protocol/replication.js';
import { ephemeralKeyPair, SecureChannel, sessionCipher, type Cipher } from '../protocol/secure.js';
import { readWelcomeBody, SessionType, type AuthSettings, type ChallengeMessage, type HelloBody, type SharingState, type WelcomeBody } from '../protocol/session.js';
import {
  AckStatus, chunk, SyncType, type AckMessage, type DeltasMessage, type JoinPlanMessage, type SnapshotItem,
  type SnapshotMessage, type UploadEntity,
} from '../protocol/sync.js';
import { capabilitiesFor, parseEntity, type EntityKey } from '../storage/catalog.js';
import type { ChangeOutcome } from '../storage/group-store.js';
import type { LocalStore, QueuedChange, RemoteItem } from '../storage/local-store.js';
import { encodedSize, splitItemRecord } from '../storage/records.js';
import type { Clock, Timer } from './clock.js';
import { Connection } from './connection.js';
import { admissionProof, checkServerProof, deviceIdOf, signParts, verifyParts, type Identity } from './identity.js';
import type { SyncLog } from './logger.js';

/** Where a client connects. */
export interface ServerAddress {
  host: string;
  port: number;
}

/**
 * What the client's pinned view of its group is (kept in the local store). Written only when a join
 * completes: a machine holds a pin once it is admitted, never before (SPEC §6).
 */
export interface ClientPin {
  groupId: string;
  groupKey: string;
  epoch: string;
  joined: boolean;
}

/** A group a client trusts: its id and Ed25519 public key. */
export interface TrustedGroup {
  groupId: string;
  groupKey: Uint8Array;
}

/**
 * The pin of a completed join in `store`, or undefined. Older builds saved a pin at the welcome
 * (`joined: false`) before the join it rested on completed; such a pin admits nothing and is ignored.
 */
export async function readPin(store: Pick<LocalStore, 'getMeta'>): Promise<ClientPin | undefined> {
  const pin = await store.getMeta<ClientPin>('pin');
  return pin?.joined === true ? pin : undefined;
}

/** Connection state of a client. `sleeping`: the machine sleeps; no session, no heartbeat, no timer. */
export type ClientState = 'connecting' | 'joining' | 'live' | 'offline' | 'refused' | 'stopped' | 'sleeping';

/** How long a client going to sleep waits for the server to acknowledge (close the session). */
export const SLEEP_ACK_MS = 2000;

/** What the panel shows when a login could not give the user current data (manual 002; SPEC §8). */
export const LOGIN_AGAIN_MESSAGE = 'Synchronize Custom Settings: Log in again for synchronization.';

/**
 * A user whose login could not be given current data: the fetch failed (the server unreachable, the
 * session lost before the answer), or this machine's copy differs from the server's by checksum. The
 * user's next login repairs it (a checksum difference: the server's whole copy replaces this one's).
 */
export interface LoginAgain {
  user: string;
  reason: 'fetch-failed' | 'checksum';
  /** Why, for the technician. */
  detail: string;
  since: number;
}

/** The `login-again` event: a user must log in again (with the panel's message and why), or a login repaired it. */
export type LoginAgainEvent =
  | { user: string; required: true; reason: LoginAgain['reason']; message: string; detail: string }
  | { user: string; required: false };

/** The event for a user's log-in-again entry (undefined: cleared). */
export function loginAgainEvent(user: string, entry: LoginAgain | undefined): LoginAgainEvent {
  return entry ? { user, required: true, reason: entry.reason, message: LOGIN_AGAIN_MESSAGE, detail: entry.detail } : { user, required: false };
}

/**
 * Deletes this machine's copy of users and user groups only (SPEC §8, "delete the user settings
 * information, and log in again"): the group keeps its copy. The server stops sending the deleted
 * users (release) and their next login fetches them whole; a user group, which every client holds,
 * is fetched again at once. Changes of theirs still queued are sent as usual (an edit is not lost).
 */
export async function deleteLocalCopies(store: LocalStore, client: SyncClient | undefined, keys: readonly EntityKey[]): Promise<EntityKey[]> {
  const deleted = await store.deleteLocal(keys);
  const users = deleted.filter((e) => e.startsWith('u:')).map((e) => e.slice(2));
  client?.release(users);
  for (const u of users) client?.forgetLoginAgain(u);
  client?.fetchAgain(deleted.filter((e) => e.startsWith('g:')));
  return deleted;
}

/** Options of a client. */
export interface SyncClientOptions {
  store: LocalStore;
  identity: Identity;
  settings: AuthSettings;
  clock: Clock;
  log: SyncLog;
  server: ServerAddress;
  profile: { name: string; serial: string; location: string; software: string };
  heartbeatSeconds: number;
  /**
   * A group trusted without a pin or an admission: a server-client's own server, whose key this agent
   * holds itself. Only that group is accepted, and the pin follows it.
   */
  trust?: TrustedGroup;
  /** Protocol version to speak (older values simulate older firmware). */
  protocol?: number;
  onRemote?: (applied: readonly RemoteItem[], deleted: readonly EntityKey[]) => void;
  onState?: (state: ClientState, error?: MfpError) => void;
  /** Users the local store's bound dropped while applying remote data (the agent releases them). */
  onEvicted?: (users: string[]) => void;
  /** After each acknowledgement: outcome counts and what is still queued. */
  onAcked?: (summary: AckSummary) => void;
  /** While a join (or a resync by checksum) runs: how much of the server's copy has arrived. */
  onJoinProgress?: (progress: JoinProgress) => void;
  /** A user must log in again (an entry), or a login repaired it (undefined). */
  onLoginAgain?: (user: string, entry: LoginAgain | undefined) => void;
  /**
   * A server found by search (SPEC §13): when it cannot be reached, the addresses that answer a search
   * for the pinned group. A hint only: the session there must prove the pinned group key.
   */
  rediscover?: (groupId: string) => Promise<ServerAddress[]>;
  /** The pinned group's server proved its key at an address found by search: the client stays there. */
  onServerMoved?: (address: ServerAddress) => void;
}

/** Searches for a lost server found by search: the first after this long, doubling up to the ceiling. */
const SEARCH_BASE_MS = 2000;
const SEARCH_MAX_MS = 60_000;
/** An address found by search that did not prove the pinned group key is not tried again for this long. */
const CANDIDATE_HOLD_MS = 60_000;

/**
 * How far a join (or a resync by checksum) has got, as this client sees it. The total is known from
 * the server's join plan: the entities (users, user groups) whose copy the server sends to replace
 * this machine's. Group address lists and Shared buttons the client did not offer travel too, but are
 * not counted. Bytes are the snapshot frames' sizes as received, with no total: the plan names
 * entities, not their sizes.
 */
export interface JoinProgress {
  /**
   * `waiting`: the offer is sent, the server's plan has not come (joins run one at a time on the
   * server, so a client may wait for another's); `receiving`: parts of the snapshot arrive;
   * `applying`: all of it arrived and is being written; `done`: joined, the session goes live.
   */
  phase: 'waiting' | 'receiving' | 'applying' | 'done';
  /** Entities of the plan received so far. */
  entities: number;
  /** Entities of the plan in all (0 while waiting). */
  total: number;
  /** Snapshot bytes received so far. */
  bytes: number;
}

/** Outcomes of one acknowledgement frame. */
export interface AckSummary {
  applied: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
  queued: number;
  /** Each change the frame answered: its counter, outcome and the server's version (not for a rejection). */
  changes: { c: number; status: ChangeOutcome['status']; v?: number }[];
}

/** Refusals a retry cannot fix: the technician must act. */
const FATAL: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'AUTH_INCORRECT', 'AUTH_LOCKED', 'DEVICE_REMOVED', 'DEVICE_KEY_MISMATCH', 'GROUP_KEY_CHANGED',
  'PROTOCOL_UNSUPPORTED', 'AUTH_SETTINGS_MISMATCH',
]);

/**
 * Refusals of what this client sent (a frame the server could not take). A retry re-sends the same
 * queue, so the same refusal is likely: such sessions do not reset the reconnect backoff.
 */
const INPUT_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'MESSAGE_INVALID', 'MESSAGE_UNKNOWN', 'MESSAGE_UNEXPECTED', 'FRAME_MALFORMED', 'FRAME_TOO_LARGE',
]);

/** Formats host:port for a URL (IPv6 in brackets). */
export function formatAddress(a: ServerAddress): string {
  return `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** The client role. */
export class SyncClient {
  readonly #o: SyncClientOptions;
  /** The server's address (a search may find the group's server at another one: SPEC §13). */
  #server: ServerAddress;
  /** An address found by search, tried until its session proves the pinned group key. */
  #candidate: ServerAddress | undefined;
  /** Addresses found by search that failed, and until when they are passed over. */
  readonly #passed = new Map<string, number>();
  #searching = false;
  #searchAt = 0;
  #searchBackoff = 0;
  #state: ClientState = 'offline';
  #error: MfpError | undefined;
  #conn: Connection | undefined;
  #stopped = true;
  #attempt = 0;
  /** Sessions in a row the server ended by refusing what this client sent, and the last such refusal. */
  #refusals = 0;
  #lastRefusal: MfpError | undefined;
  #retry: Timer | undefined;
  #heartbeat: Timer | undefined;
  #silence: Timer | undefined;
  #admission: { user: string; password: string } | undefined;
  #sleeping = false;
  /** A sleep told to the server, waiting for it to close the session. */
  #sleepWait: { conn: Connection; timer: Timer; timedOut: boolean; resolve: (told: boolean) => void } | undefined;
  /** This clock minus the server's, estimated from the last pong. */
  #skewMs: number | null = null;
  #firstOutcome: { resolve: () => void; reject: (e: MfpError) => void } | undefined;
  #capabilities = new Set<string>();
  #inFlight = new Map<number, QueuedChange>();
  /** The highest counter this session has sent (or passed over): a flush reads only the queue after it. */
  #sentUpTo = 0;
  #flushing = false;
  #flushAgain = false;
  #kicked = false;
  /**
   * Entities to fetch from the server once live (users at login); `login`: a login waits for it (it
   * may clear the user's log-in-again), not a retry of a fetch that failed.
   */
  #pendingFetch = new Map<EntityKey, { login: boolean }>();
  /** Fetches sent and not answered yet, in order (the server answers them in order). */
  #fetching: { e: EntityKey; login: boolean; repair: boolean }[] = [];
  /** Users whose login could not be given current data: their next login repairs it. */
  readonly #loginAgain = new Map<string, LoginAgain>();
  /** The join snapshot being received: items not applied yet, the entities it replaces, those done. */
  #snapshot = emptySnapshot();
  #welcome: WelcomeBody | undefined;
  /** The join under way: the plan's entities, those received, snapshot bytes. */
  #join: { expected: Set<string>; seen: Set<string>; bytes: number } | undefined;
  /** Bytes on the wire, for the benchmark. */
  readonly stats = { sent: 0, received: 0, connects: 0 };

  constructor(options: SyncClientOptions) {
    this.#o = options;
    this.#server = options.server;
  }

  /** Current state. */
  get state(): ClientState {
    return this.#state;
  }

  /** The open session's negotiated protocol and the cipher its frames are sealed with. */
  get session(): { protocol: number; cipher: Cipher } | undefined {
    const protocol = this.#conn && this.#welcome ? Math.min(this.#welcome.protocol, this.#o.protocol ?? PROTOCOL_VERSION) : undefined;
    return protocol === undefined ? undefined : { protocol, cipher: sessionCipher(protocol) };
  }

  /** The last coded error (refusal or connection failure). */
  get lastError(): MfpError | undefined {
    return this.#error;
  }

  /**
   * The server has ended this many sessions in a row by refusing what this client sent (the same queue
   * is re-sent each time), with the last refusal; 0 once a session ends otherwise or an ack arrives.
   */
  get refusals(): { count: number; error: MfpError | undefined } {
    return { count: this.#refusals, error: this.#lastRefusal };
  }

  /** The server this client connects to. */
  get server(): ServerAddress {
    return this.#server;
  }

  /** This machine's clock minus the server's (from the last pong: half the round trip is the error), or null. */
  get skewMs(): number | null {
    return this.#skewMs;
  }

  /** Whether the client heartbeats to its server: a session is up (joining or live). */
  get operating(): boolean {
    return this.#state === 'live' || this.#state === 'joining';
  }

  /** Starts the connect loop; resolves at once. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#connect();
  }

  /**
   * Connects once with the administrator account (first admission) and resolves when the client is
   * joined and live; rejects with the server's refusal code, or ADDRESS_INCORRECT if it cannot reach it.
   * On success the session stays up and the reconnect loop runs from then on.
   */
  admit(admission: { user: string; password: string } | undefined, timeoutMs = 30_000): Promise<void> {
    this.#admission = admission;
    return new Promise<void>((resolve, reject) => {
      const timer = this.#o.clock.setTimeout(() => {
        this.#firstOutcome = undefined;
        void this.stop();
        reject(new MfpError('ADDRESS_INCORRECT', `no answer from ${formatAddress(this.#server)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#firstOutcome = {
        resolve: () => { timer.cancel(); resolve(); },
        reject: (e) => { timer.cancel(); reject(e); },
      };
      this.start();
    });
  }

  /** Stops: closes the session and every timer. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#endSleepWait(false);
    this.#retry?.cancel();
    this.#heartbeat?.cancel();
    this.#silence?.cancel();
    this.#conn?.close();
    this.#conn = undefined;
    this.#setState('stopped');
  }

  /**
   * The machine goes to sleep: tell the server (so it stops counting this client as operating at once),
   * then no session, heartbeat or timer until wake(). Resolves true once the server acknowledged (closed
   * the session), false if it could not be told (no session, or no answer within SLEEP_ACK_MS): then it
   * stops counting this client after the heartbeat timeout.
   */
  sleep(): Promise<boolean> {
    if (this.#stopped || this.#sleeping) return Promise.resolve(false);
    this.#sleeping = true;
    const first = this.#firstOutcome;
    this.#firstOutcome = undefined;
    first?.reject(new MfpError('PEER_GONE', 'the machine went to sleep before this client joined'));
    this.#retry?.cancel();
    this.#heartbeat?.cancel();
    this.#silence?.cancel();
    const conn = this.#conn;
    this.#setState('sleeping');
    // Before the welcome nothing can be sent sealed: the session is dropped and the server times it out.
    if (!conn || !this.#welcome || !conn.send({ type: HeartbeatType.Sleep, at: this.#o.clock.now() })) {
      this.#conn = undefined;
      conn?.close();
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      const wait = {
        conn,
        timedOut: false,
        resolve,
        timer: this.#o.clock.setTimeout(() => {
          wait.timedOut = true;
          conn.close();
        }, SLEEP_ACK_MS),
      };
      this.#sleepWait = wait;
    });
  }

  /** The machine woke up: reconnect now and resume by cursor. */
  wake(): void {
    if (!this.#sleeping) return;
    this.#sleeping = false;
    this.#endSleepWait(false);
    const old = this.#conn;
    this.#conn = undefined;
    old?.close();
    if (this.#stopped) return;
    this.#attempt = 0;
    this.#connect();
  }

  /** Whether the machine was told to sleep and not woken since. */
  get sleeping(): boolean {
    return this.#sleeping;
  }

  #endSleepWait(told: boolean): void {
    const wait = this.#sleepWait;
    if (!wait) return;
    this.#sleepWait = undefined;
    wait.timer.cancel();
    wait.resolve(told && !wait.timedOut);
  }

  /**
   * A user logged in: fetch their data now, or as soon as the session is live. While the server cannot
   * be reached (offline, refused) the user is told to log in again at once; the fetch is still sent
   * once the session is live. A user told so before is repaired: the server's whole copy is fetched
   * and replaces this machine's.
   */
  login(user: string): void {
    const e: EntityKey = `u:${user}`;
    if (this.#state === 'offline' || this.#state === 'refused') {
      const why = this.#error ? ` (${this.#error.code}: ${this.#error.message})` : '';
      this.#requireLogin(user, 'fetch-failed', `the server ${formatAddress(this.#server)} could not be reached at login${why}: this machine's copy may not be current`);
      if (!this.#pendingFetch.has(e)) this.#pendingFetch.set(e, { login: false });
      return;
    }
    this.#pendingFetch.set(e, { login: true });
    if (this.#state === 'live') this.#sendFetches();
  }

  /** Fetches entities again (not a login): at once if live, else when the session is. */
  fetchAgain(entities: readonly EntityKey[]): void {
    for (const e of entities) if (!this.#pendingFetch.has(e)) this.#pendingFetch.set(e, { login: false });
    if (entities.length > 0 && this.#state === 'live') this.#sendFetches();
  }

  /** Users who must log in again, oldest first. */
  get loginAgain(): LoginAgain[] {
    return [...this.#loginAgain.values()];
  }

  /** Forgets a user's log-in-again (its local copy was deleted: the next login fetches it whole). */
  forgetLoginAgain(user: string): void {
    if (this.#loginAgain.delete(user)) this.#o.onLoginAgain?.(user, undefined);
  }

  #requireLogin(user: string, reason: LoginAgain['reason'], detail: string): void {
    const entry: LoginAgain = { user, reason, detail, since: this.#loginAgain.get(user)?.since ?? this.#o.clock.now() };
    this.#loginAgain.set(user, entry);
    this.#o.log.warning('LOGIN_AGAIN', `${user}: ${LOGIN_AGAIN_MESSAGE} (${detail})`);
    this.#o.onLoginAgain?.(user, entry);
  }

  /** The local store dropped users (its bound): the server stops sending them. */
  release(users: readonly string[]): void {
    if (users.length > 0 && this.#state === 'live') this.#conn?.send({ type: SyncType.Release, entities: users.map((u) => `u:${u}`) });
  }

  /**
   * A local change was queued: send it if the session is live. Changes queued in the same turn of the
   * event loop (a burst, an import) go out together in one frame, answered by one acknowledgement:
   * sent from a microtask once the current work is done, without waiting for the rest of the turn.
   */
  kick(): void {
    if (this.#state !== 'live' || this.#kicked) return;
    this.#kicked = true;
    queueMicrotask(() => {
      this.#kicked = false;
      void this.#flush();
    });
  }

  #setState(state: ClientState, error?: MfpError): void {
    if (error) this.#error = error;
    if (state === 'live') this.#error = undefined;
    if (this.#state === state && !error) return;
    this.#state = state;
    this.#o.onState?.(state, error);
  }

  // ---- connection ----------------------------------------------------------------------------------

  #connect(): void {
    if (this.#stopped || this.#sleeping) return;
    this.#setState('connecting');
    this.stats.connects++;
    const target = this.#candidate ?? this.#server;
    const url = `ws://${formatAddress(target)}/`;
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    let opened = false;
    let challenge: { message: ChallengeMessage; bytes: Uint8Array } | undefined;
    let helloBody: Uint8Array | undefined;
    // A fresh X25519 key pair for this connection only: forward secrecy.
    const ephemeral = ephemeralKeyPair();
    const conn: Connection = new Connection(ws, {
      onMessage: async (m, raw) => {
        this.#heard();
        if (!challenge) {
          if (m.type === ReplicationType.Challenge) throw new MfpError('NOT_A_SERVER', `${formatAddress(target)} is a replication target, not a server`);
          if (m.type !== SessionType.Challenge) throw new MfpError('MESSAGE_UNEXPECTED', `expected challenge, got ${m.type}`);
          challenge = { message: m, bytes: raw };
          helloBody = this.#hello(conn, m, raw, ephemeral.publicKey);
          return;
        }
        if (!this.#welcome) {
          if (m.type === SessionType.Refuse) return;
          if (m.type !== SessionType.Welcome) throw new MfpError('MESSAGE_UNEXPECTED', `expected welcome, got ${m.type}`);
          await this.#onWelcome(conn, challenge, helloBody!, m.body, m.sig, ephemeral);
          return;
        }
        await this.#onMessage(conn, m, raw.length);
      },
      onClose: (reason): void => this.#onClose(conn, target, opened, reason),
      expectsWelcome: true,
      // A pong counts as it arrives, even while a long handler (applying a large join) runs.
      outOfOrder: (m) => m.type === HeartbeatType.Pong,
    });
    ws.on('open', () => {
      opened = true;
    });
    this.#conn = conn;
    this.#welcome = undefined;
    this.#join = undefined;
    this.#fetching = [];
    this.#inFlight.clear();
    this.#sentUpTo = 0;
    this.#flushing = false;
  }

  #onClose(conn: Connection, target: ServerAddress, opened: boolean, reason: MfpError | undefined): void {
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    this.#fetchesLost(reason);
    this.#welcome = undefined;
    this.#heartbeat?.cancel();
    this.#silence?.cancel();
    this.stats.sent += conn.bytes.sent;
    this.stats.received += conn.bytes.received;
    if (this.#sleeping) {
      // The server closing the session after `sleep` is its acknowledgement; no reconnect until wake().
      this.#endSleepWait(true);
      return;
    }
    const error = !opened
      ? new MfpError('ADDRESS_INCORRECT', `cannot reach the server at ${formatAddress(target)}`)
      : reason ?? new MfpError('PEER_GONE', 'the server closed the connection');
    if (this.#firstOutcome) {
      const first = this.#firstOutcome;
      this.#firstOutcome = undefined;
      this.#stopped = true;
      this.#setState('refused', error);
      first.reject(error);
      return;
    }
    if (this.#stopped) return;
    if (this.#candidate) {
      // An address found by search that is not the group's server (unreachable, another group, or a
      // stranger advertising this group's id without its key): passed over; the pin and the address stay.
      const candidate = formatAddress(this.#candidate);
      this.#candidate = undefined;
      this.#passed.set(candidate, this.#o.clock.now() + CANDIDATE_HOLD_MS);
      const refused = new MfpError(error.code, `${candidate}, found by search, is not this group's server (${error.message}): passed over; still looking for the group's server`);
      this.#o.log.warning(error.code, refused.message);
      this.#setState('offline', refused);
      this.#retryLater();
      return;
    }
    if (FATAL.has(error.code)) {
      this.#o.log.error(error.code, `synchronization stopped: ${error.message}`);
      this.#stopped = true;
      this.#setState('refused', error);
      return;
    }
    if (error.code === 'GROUP_MISMATCH') {
      // A machine of another group at the server's address: a replacement whose backup is not restored
      // yet (the manual's "same IP address" procedures). Refused at the challenge, nothing was sent;
      // retried with backoff, red at once, until the group's server answers there.
      if (this.#lastRefusal?.code !== 'GROUP_MISMATCH') {
        this.#o.log.error('GROUP_MISMATCH', `the machine at ${formatAddress(this.#server)} serves another group (${error.message}); nothing was sent; retrying with backoff until the group's server answers there`);
      }
      this.#refusals = Math.max(this.#refusals + 1, REFUSALS_REPORTED);
      this.#lastRefusal = error;
    } else if (INPUT_REFUSALS.has(error.code) && conn.isSecure) {
      // The server refused what this client sent. The next session re-sends the same queue, so the
      // backoff keeps growing across sessions (going live does not reset it) and the technician is told.
      this.#refusals++;
      this.#lastRefusal = error;
      if (this.#refusals === REFUSALS_REPORTED) {
        this.#o.log.error(error.code, `the server ended ${REFUSALS_REPORTED} sessions in a row refusing what this client sent (${error.message}); retrying with backoff up to ${RECONNECT_MAX_MS / 1000} s, ${this.#o.store.queueSize} change(s) queued`);
      }
    } else if (this.#state === 'live') {
      this.#refusals = 0;
      this.#lastRefusal = undefined;
    }
    if (this.#state === 'live' && this.#refusals < REFUSALS_REPORTED) this.#o.log.warning('SERVER_UNREACHABLE', `lost the server ${formatAddress(this.#server)}: ${error.message}; working offline`);
    const wasLive = this.#state === 'live';
    this.#setState('offline', error);
    this.#retryLater();
    // The server was lost, cannot be reached, or another machine answers at its address: search.
    if (wasLive || !opened || error.code === 'GROUP_MISMATCH') this.#search();
  }

  /** The next attempt, after exponential backoff with full jitter. */
  #retryLater(): void {
    const attempt = Math.max(this.#attempt++, this.#refusals);
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt, 16));
    this.#retry = this.#o.clock.setTimeout(() => this.#connect(), Math.random() * ceiling);
  }

  /**
   * Searches for the pinned group's server (a server found by search, lost: SPEC §13), at most once
   * per backoff interval. An address found is tried at once; it is kept only once its session proved
   * the pinned group key (#onWelcome), else it is passed over for a while.
   */
  #search(): void {
    const rediscover = this.#o.rediscover;
    const pin = this.#pin;
    if (!rediscover || !pin || this.#searching || this.#o.clock.now() < this.#searchAt) return;
    this.#searching = true;
    this.#searchBackoff = Math.min(SEARCH_MAX_MS, this.#searchBackoff * 2 || SEARCH_BASE_MS);
    this.#searchAt = this.#o.clock.now() + this.#searchBackoff;
    const done = (found: ServerAddress[]) => {
      this.#searching = false;
      // A session that has reached the server is left alone; one still trying the old address is dropped.
      if (this.#stopped || this.#sleeping || (this.#conn && this.#welcome)) return;
      const now = this.#o.clock.now();
      const current = formatAddress(this.#server);
      const next = found.find((a) => formatAddress(a) !== current && (this.#passed.get(formatAddress(a)) ?? 0) <= now);
      if (!next) return;
      this.#o.log.info('SERVER_SEARCH', `the search for group ${pin.groupId} found ${formatAddress(next)}: trying it (its session must prove the pinned group key)`);
      this.#candidate = next;
      this.#retry?.cancel();
      const old = this.#conn;
      this.#conn = undefined;
      old?.close();
      this.#connect();
    };
    rediscover(pin.groupId).then(done, () => done([]));
  }

  /**
   * The session ended: logins whose fetch was not answered could not be given current data. Their
   * fetch is sent again by the next session (as a retry: only a login clears the user's log-in-again).
   */
  #fetchesLost(reason: MfpError | undefined): void {
    const lost = [...this.#fetching.filter((f) => f.login).map((f) => f.e), ...[...this.#pendingFetch].filter(([, p]) => p.login).map(([e]) => e)];
    for (const f of this.#fetching) this.#pendingFetch.set(f.e, { login: false });
    this.#fetching = [];
    for (const e of lost) {
      this.#pendingFetch.set(e, { login: false });
      if (!e.startsWith('u:') || this.#stopped || this.#sleeping) continue;
      this.#requireLogin(e.slice(2), 'fetch-failed', `the session to ${formatAddress(this.#server)} ended before the login's data arrived${reason ? ` (${reason.code})` : ''}`);
    }
  }

  /** Restarts the silence timer: three heartbeat intervals without a frame and the server is gone. */
  #heard(): void {
    this.#silence?.cancel();
    if (this.#sleeping) return;
    this.#silence = this.#o.clock.setTimeout(() => {
      this.#conn?.terminate(new MfpError('PEER_GONE', `no frame from the server for ${MISSED_HEARTBEATS} heartbeats`));
    }, this.#o.heartbeatSeconds * 1000 * MISSED_HEARTBEATS);
  }

  #beat(): void {
    this.#heartbeat?.cancel();
    if (this.#sleeping) return;
    this.#heartbeat = this.#o.clock.setTimeout(() => {
      this.#conn?.send({ type: HeartbeatType.Ping, at: this.#o.clock.now(), cursor: this.#o.store.cursor });
      this.#beat();
    }, this.#o.heartbeatSeconds * 1000);
  }

  #hello(conn: Connection, challenge: ChallengeMessage, challengeBytes: Uint8Array, ephemeral: Uint8Array): Uint8Array {
    const protocol = this.#o.protocol ?? PROTOCOL_VERSION;
    if (challenge.protocol < MIN_PROTOCOL_VERSION || challenge.minProtocol > protocol) {
      throw new MfpError('PROTOCOL_UNSUPPORTED', `server speaks ${challenge.minProtocol}-${challenge.protocol}`);
    }
    const pin = this.#pin;
    // Without the administrator account, only the group this machine trusts may answer: refused here,
    // before the hello, when the challenge already names another group (nothing about this machine is sent).
    if (!this.#admission) {
      const expected = this.#expectedGroup();
      if (!expected) throw new MfpError('AUTH_INCORRECT', 'this machine was never admitted to a group: the first connection needs the administrator account (`mfpsync role set client --server HOST --user ID --password PW`)');
      if (challenge.groupId !== expected.groupId) throw groupMismatch(expected.groupId, challenge.groupId);
    }
    const id = this.#o.identity;
    const body: HelloBody = {
      protocol,
      minProtocol: MIN_PROTOCOL_VERSION,
      capabilities: capabilitiesFor(protocol),
      deviceId: id.deviceId,
      publicKey: id.publicKey,
      ...this.#o.profile,
      groupId: pin?.groupId ?? null,
      epoch: pin?.joined ? pin.epoch : null,
      cursor: pin?.joined ? this.#o.store.cursor : 0,
      heartbeat: this.#o.heartbeatSeconds,
      sharingVersion: this.#sharingApplied?.version ?? 0,
      settings: this.#o.settings,
      admission: null,
      ephemeral,
    };
    if (this.#admission) {
      const { proof, serverKey } = admissionProof(this.#admission.password, challenge.salt, challenge.nonce, id.deviceId);
      body.admission = { user: this.#admission.user, proof };
      this.#expectServer = { serverKey, nonce: challenge.nonce };
    } else this.#expectServer = undefined;
    const bytes = encodeValue(body);
    conn.sendBytes(encodeMessage({ type: SessionType.Hello, body: bytes, sig: signParts(id.secretKey, challengeBytes, bytes) }));
    return bytes;
  }

  #pin: ClientPin | undefined;
  /** Sharing scopes this machine last applied, and the ones in force for the current session. */
  #sharingApplied: SharingState | undefined;
  #deviceItems = new Set<string>();
  /** What the server must prove when this hello carried an admission. */
  #expectServer: { serverKey: Uint8Array; nonce: Uint8Array } | undefined;

  /** The group this client joined (its id and the key it pinned), if any. */
  get pin(): ClientPin | undefined {
    return this.#pin;
  }

  /** Loads the pinned group from the store; call before start. */
  async loadPin(): Promise<void> {
    this.#sharingApplied = await this.#o.store.getMeta<SharingState>('sharing');
    this.#pin = await readPin(this.#o.store);
  }

  /** The group a session without the administrator account must present: the trusted one, else the pin's. */
  #expectedGroup(): TrustedGroup | undefined {
    if (this.#o.trust) return this.#o.trust;
    const pin = this.#pin;
    return pin ? { groupId: pin.groupId, groupKey: Buffer.from(pin.groupKey, 'base64') } : undefined;
  }

  async #onWelcome(
    conn: Connection,
    challenge: { message: ChallengeMessage; bytes: Uint8Array },
    helloBytes: Uint8Array,
    bodyBytes: Uint8Array,
    sig: Uint8Array,
    ephemeral: ReturnType<typeof ephemeralKeyPair>,
  ): Promise<void> {
    const welcome = readWelcomeBody(decodeValue(bodyBytes));
    // The group key signs the challenge as the server sent it and the hello as it received it: if a
    // man in the middle altered either (a lower protocol, another ephemeral key), this fails.
    if (!verifyParts(welcome.groupKey, sig, challenge.bytes, helloBytes, bodyBytes)) {
      throw new MfpError('FRAME_TAMPERED', 'the welcome\'s signature does not cover what this client sent and received: the exchange was altered');
    }
    const expect = this.#expectServer;
    if (expect && !(welcome.adminProof && checkServerProof(expect.serverKey, welcome.adminProof, expect.nonce, this.#o.identity.deviceId, welcome.groupKey))) {
      throw new MfpError('AUTH_INCORRECT', 'the server could not prove it holds this group\'s administrator account: it is not the server it claims to be');
    }
    // Without the administrator account, the group trusted (the pin of a completed join) must answer:
    // any address, any session. With it, the server's proof above is the trust, and the pin changes only
    // when the join completes (#onSnapshot).
    const expected = this.#admission ? undefined : this.#expectedGroup();
    if (expected && expected.groupId !== welcome.groupId) throw groupMismatch(expected.groupId, welcome.groupId);
    if (expected && !Buffer.from(expected.groupKey).equals(welcome.groupKey)) {
      throw new MfpError('GROUP_KEY_CHANGED', `the server presents another group key than the one pinned for group ${expected.groupId}: if the server was replaced without its backup, run \`mfpsync role set client\` again with the administrator account`);
    }
    // A group id is its key's device id: a welcome that pairs them otherwise is no group's
    // (an admission would pin it).
    if (deviceIdOf(welcome.groupKey) !== welcome.groupId) throw new MfpError('MESSAGE_INVALID', `the welcome names group ${welcome.groupId} with a key that is not that group's`);
    const moved = this.#candidate;
    if (moved) {
      // The address found by search proved the pinned group key: it is the group's server's now.
      this.#candidate = undefined;
      this.#server = moved;
      this.#o.onServerMoved?.(moved);
    }
    // From here on every frame is sealed with keys only these two ephemeral key pairs can derive.
    const protocol = Math.min(welcome.protocol, this.#o.protocol ?? PROTOCOL_VERSION);
    conn.secure(SecureChannel.derive('client', ephemeral, challenge.message.ephemeral, [challenge.bytes, helloBytes], sessionCipher(protocol)), MAX_FRAME_BYTES, protocol);
    this.#welcome = welcome;
    this.#capabilities = new Set(welcome.capabilities);
    this.#deviceItems = new Set(welcome.sharing.device);
    if (welcome.lastCounter > this.#o.store.durableCounter) {
      // The server applied changes whose local batch was then lost (sent while being written, then a
      // crash or a failed write): its own changes are never echoed back, so fetch every entity held here
      // by version; only what differs comes back.
      for (const e of this.#o.store.entities()) if (!this.#pendingFetch.has(e)) this.#pendingFetch.set(e, { login: false });
      this.#o.log.warning('RESYNC', `the server holds changes of this machine up to ${welcome.lastCounter}, this store only up to ${this.#o.store.durableCounter}: fetching its copy of every entity held here`);
    }
    await this.#o.store.raiseCounter(welcome.lastCounter);
    if (this.#sleeping) return;
    this.#beat();
    if (welcome.resume === 'cursor') {
      this.#goLive();
      return;
    }
    this.#setState('joining');
    await this.#applySharing(welcome.sharing);
    if (this.#o.store.queueSize > 0) await this.#o.store.rebaseQueue();
    // Device-scope items are this machine's own: not compared with, nor replaced by, the group's copy.
    const entities = this.#o.store
      .entities()
      .map((e) => [e, this.#o.store.entityHash(e, (n) => !this.#deviceScoped(e, n))!] as [string, string]);
    this.#snapshot = emptySnapshot();
    this.#join = { expected: new Set(), seen: new Set(), bytes: 0 };
    conn.send({ type: SyncType.JoinOffer, entities });
    this.#joinProgress('waiting');
  }

  #joinProgress(phase: JoinProgress['phase']): void {
    const j = this.#join;
    if (!j) return;
    const total = j.expected.size;
    // Once everything arrived, entities whose replacement holds no item this client knows count too.
    const entities = phase === 'applying' || phase === 'done' ? total : j.seen.size;
    this.#o.onJoinProgress?.({ phase, entities, total, bytes: j.bytes });
  }

  /**
   * This machine's part of a change of sharing scope (SPEC §4), before it synchronizes: an item back to
   * shared has its values reset to defaults; an item now device-specific keeps its values, queued once so
   * the server holds a copy. Both are safe to repeat if the session drops before the join completes.
   */
  async #applySharing(state: SharingState): Promise<void> {
    const before = new Set(this.#sharingApplied?.device ?? []);
    if (this.#sharingApplied?.version === state.version) return;
    for (const item of before) {
      if (state.device.includes(item)) continue;
      const n = await this.#o.store.resetItem(item);
      this.#o.log.info('SHARING_CHANGED', `${item} is shared again: reset this machine's values of it (${n}) before synchronizing`);
    }
    for (const item of state.device) {
      if (before.has(item)) continue;
      const n = await this.#o.store.queueCopies(item);
      this.#o.log.info('SHARING_CHANGED', `${item} is device-specific now: kept this machine's values (${n}) and sent them to the server's copy`);
    }
  }

  #deviceScoped(e: EntityKey, n: string): boolean {
    return e.startsWith('u:') && this.#deviceItems.has(n);
  }

  #goLive(): void {
    if (this.#sleeping) return;
    this.#attempt = 0;
    this.#searchBackoff = 0;
    this.#searchAt = 0;
    // The group's server answers at the address again.
    if (this.#lastRefusal?.code === 'GROUP_MISMATCH') {
      this.#refusals = 0;
      this.#lastRefusal = undefined;
    }
    this.#admission = undefined;
    this.#setState('live');
    const first = this.#firstOutcome;
    this.#firstOutcome = undefined;
    first?.resolve();
    this.#sendFetches();
    void this.#flush();
  }

  async #onMessage(conn: Connection, m: Message, size: number): Promise<void> {
    switch (m.type) {
      case SyncType.JoinPlan:
        if (this.#join) for (const e of m.replace) this.#join.expected.add(e);
        this.#joinProgress('receiving');
        return this.#upload(conn, m);
      case SyncType.UploadAck:
        if (m.skipped.length > 0) this.#o.log.info('JOIN_SKIPPED', `${m.skipped.length} entities were uploaded first by another client; the server's copy wins`);
        if (this.#join && m.skipped.length > 0) {
          for (const e of m.skipped) this.#join.expected.add(e);
          this.#joinProgress('receiving');
        }
        return;
      case SyncType.Snapshot:
        return this.#onSnapshot(m, size);
      case SyncType.Deltas:
        return this.#onDeltas(m);
      case SyncType.Ack:
        return this.#onAck(m);
      case HeartbeatType.Pong:
        // The server's clock was read about half a round trip before this moment.
        this.#skewMs = Math.round((m.echo + this.#o.clock.now()) / 2 - m.at);
        return;
      case SessionType.Refuse:
        return;
      default:
        throw new MfpError('MESSAGE_UNEXPECTED', `${m.type} is not accepted by a client`);
    }
  }

  async #upload(conn: Connection, plan: JoinPlanMessage): Promise<void> {
    if (plan.upload.length === 0) return;
    // Read in one scan where the entities lie together; sized by their stored records (no second encoding).
    const byEntity = new Map<EntityKey, { entity: UploadEntity; size: number }>(plan.upload.map((e) => [e, { entity: { e, items: {} }, size: 64 }]));
    await this.#o.store.scanEntities(plan.upload, (e, n, bytes, key) => {
      const u = byEntity.get(e);
      if (!u || !this.#knows(e, n)) return;
      // The stored value's bytes go into the frame as they are (the server checks and hashes them).
      u.entity.items[n] = wireValue(splitItemRecord(bytes, key));
      u.size += bytes.length;
    });
    const entities = [...byEntity.values()];
    const parts = chunk(entities, (u) => u.size).map((part) => part.map((u) => u.entity));
    parts.forEach((part, i) => conn.send({ type: SyncType.Upload, entities: part, final: i === parts.length - 1 }));
  }

  async #onSnapshot(m: SnapshotMessage, size: number): Promise<void> {
    const store = this.#o.store;
    if (m.reason === 'fetch') {
      await this.#onFetched(m);
      return;
    }
    const snap = this.#snapshot;
    snap.items.push(...m.items);
    for (const e of m.replace) snap.replace.add(e);
    const join = this.#join;
    if (join) {
      join.bytes += size;
      for (const [e] of m.items) if (join.expected.has(e)) join.seen.add(e);
    }
    const reason = m.reason === 'join' ? 'join' : 'resync';
    const keep = (e: EntityKey, n: string) => this.#deviceScoped(e, n);
    if (!m.final) {
      // The server sends an entity's items together: every entity but the last of this frame is whole,
      // and is applied now, while the next frames travel. An interrupted join leaves those entities
      // equal to the server's, and the next join finds them identical. The cursor moves at the end only.
      let cut = snap.items.length;
      const last = snap.items[cut - 1]?.[0];
      while (cut > 0 && snap.items[cut - 1]![0] === last) cut--;
      const ready = snap.items.splice(0, cut);
      const replace = [...new Set(ready.map(([e]) => e))].filter((e) => snap.replace.has(e) && !snap.done.has(e));
      for (const e of replace) snap.done.add(e);
      if (ready.length > 0) await this.#applyRemote({ items: ready.map(toRemote), replace, selfId: this.#o.identity.deviceId, reason, keep });
      this.#joinProgress('receiving');
      return;
    }
    this.#joinProgress('applying');
    const { items } = snap;
    const replace = [...snap.replace].filter((e) => !snap.done.has(e));
    this.#snapshot = emptySnapshot();
    const welcome = this.#welcome!;
    const pin: ClientPin = { groupId: welcome.groupId, groupKey: Buffer.from(welcome.groupKey).toString('base64'), epoch: welcome.epoch, joined: true };
    const { applied, evicted } = await store.applyRemote({
      items: items.map(toRemote),
      replace,
      versions: m.versions,
      cursor: m.seq,
      selfId: this.#o.identity.deviceId,
      reason,
      keep,
      fill: m.copies.map(([e, n, val]) => ({ e, n, val })),
      sharing: welcome.sharing,
      // The join completes with this batch, and only then is the group pinned: an admission cut short
      // leaves no pin, so nothing connects without the administrator account again (SPEC §6).
      meta: { pin },
    });
    this.#sharingApplied = welcome.sharing;
    this.#pin = pin;
    this.#o.log.info('JOINED', `synchronized with ${formatAddress(this.#server)}: ${snap.replace.size} entities replaced by the server's copy`);
    this.#o.onRemote?.(applied, []);
    if (evicted.length > 0) this.#o.onEvicted?.(evicted);
    this.#joinProgress('done');
    this.#join = undefined;
    this.#goLive();
  }

  /**
   * A login's fetch answered: applies it (a repair replaces the whole entity, this machine's own
   * device-scope items and items with a change waiting kept; what it loses goes to the conflict log,
   * reason `resync`), then compares this machine's copy with the server's checksum. A copy that
   * differs asks the user to log in again; a login whose copy is the server's clears that.
   */
  async #onFetched(m: SnapshotMessage): Promise<void> {
    const f = this.#fetching.shift();
    const items = m.items.map(toRemote);
    if (!f?.repair) {
      await this.#applyRemote({ items });
    } else {
      const keep = (e: EntityKey, n: string) => this.#deviceScoped(e, n) || !this.#knows(e, n);
      await this.#applyRemote({ items, replace: [f.e], keep, selfId: this.#o.identity.deviceId, reason: 'resync' });
    }
    if (!f || !f.e.startsWith('u:')) return;
    const user = f.e.slice(2);
    const theirs = m.checks?.find(([e]) => e === f.e)?.[1];
    // A change of this user waiting for the server makes the copies differ for now: its ack settles it.
    // A server holding nothing of the user (an older server, or an upload still to come) is no comparison.
    if (typeof theirs === 'string' && !this.#o.store.isQueued(f.e)) {
      const mine = this.#o.store.entityHash(f.e, (n) => !this.#deviceScoped(f.e, n) && this.#knows(f.e, n)) ?? null;
      if (mine !== theirs) {
        this.#requireLogin(user, 'checksum', `this machine's copy differs from the server's (checksum ${mine ?? 'none'}, server ${theirs})${f.repair ? ' after a repair: it changed meanwhile' : ''}`);
        return;
      }
    }
    if (f.login && this.#loginAgain.delete(user)) {
      this.#o.log.info('LOGIN_AGAIN', `${user}: ${f.repair ? 'repaired: this machine\'s copy was replaced by the server\'s' : 'logged in again with current data'}`);
      this.#o.onLoginAgain?.(user, undefined);
    }
  }

  /** Applies what the server sent and tells the agent what changed and which users the bound dropped. */
  async #applyRemote(update: Parameters<LocalStore['applyRemote']>[0]): Promise<void> {
    const { applied, deleted, evicted } = await this.#o.store.applyRemote(update);
    this.#o.onRemote?.(applied, deleted);
    if (evicted.length > 0) this.#o.onEvicted?.(evicted);
  }

  async #onDeltas(m: DeltasMessage): Promise<void> {
    const items: RemoteItem[] = [];
    const deletes: EntityKey[] = [];
    for (const [seq, e, n, val] of m.list) {
      if (n === null) deletes.push(e);
      else if (parseEntity(e)) items.push({ e, n, v: seq, val });
    }
    await this.#applyRemote({ items, deletes, cursor: m.seq });
  }

  async #onAck(m: AckMessage): Promise<void> {
    // The server took a frame of changes: whatever it refused before is behind.
    this.#refusals = 0;
    this.#lastRefusal = undefined;
    const sent: QueuedChange[] = [];
    const outcomes: ChangeOutcome[] = m.list.map(([c, status, v, x]) => {
      const q = this.#inFlight.get(c);
      if (q) sent.push(q);
      this.#inFlight.delete(c);
      switch (status) {
        case AckStatus.Applied: return { c, status: 'applied', v };
        case AckStatus.Duplicate: return { c, status: 'duplicate', v, val: x };
        case AckStatus.Conflict: return { c, status: 'conflict', v, val: x };
        default: {
          const [code, message] = Array.isArray(x) ? (x as [ErrorCode, string]) : (['MESSAGE_INVALID', 'refused'] as const);
          this.#o.log.error(code, `the server refused a change of ${q?.e ?? '?'} ${q?.n ?? '?'}: ${message}`);
          return { c, status: 'rejected', code, message };
        }
      }
    });
    const { conflicts, rejected, restored } = await this.#o.store.settle(this.#o.identity.deviceId, outcomes, sent);
    this.#o.onAcked?.({
      applied: outcomes.filter((o) => o.status === 'applied').length,
      duplicates: outcomes.filter((o) => o.status === 'duplicate').length,
      conflicts,
      rejected,
      queued: this.#o.store.queueSize,
      changes: outcomes.map((o) => (o.status === 'rejected' ? { c: o.c, status: o.status } : { c: o.c, status: o.status, v: o.v })),
    });
    if (conflicts > 0) this.#o.log.warning('CONFLICT', `${conflicts} offline edit(s) lost to newer server values; see \`mfpsync conflicts list\``);
    // A lost conflict changes the local value to the server's: tell the firmware like any remote change.
    const taken: RemoteItem[] = [...restored];
    for (const o of outcomes) {
      const q = o.status === 'conflict' ? sent.find((x) => x.c === o.c) : undefined;
      if (q && o.status === 'conflict') taken.push({ e: q.e, n: q.n, v: o.v, val: o.val });
    }
    if (taken.length > 0) this.#o.onRemote?.(taken, []);
    if (this.#o.store.queueSize > this.#inFlight.size) void this.#flush();
  }

  #knows(e: EntityKey, n: string): boolean {
    const kind = parseEntity(e)?.kind;
    return kind !== undefined && this.#capabilities.has(`${kind}:${n}`);
  }

  /** Sends queued changes not yet in flight (changes of items the server does not know stay queued). */
  async #flush(): Promise<void> {
    if (this.#state !== 'live') return;
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    this.#flushAgain = false;
    try {
      const conn = this.#conn;
      if (!conn) return;
      const after = this.#sentUpTo;
      const read = await this.#o.store.queued(4096, after);
      if (this.#conn !== conn || this.#state !== 'live' || this.#sentUpTo !== after) return;
      // Changes of items the server does not know (an older model's server) stay queued, unsent.
      const queued = read.filter((q) => !this.#inFlight.has(q.c) && this.#knows(q.e, q.n));
      if (read.length > 0) this.#sentUpTo = read[read.length - 1]!.c;
      if (queued.length === 0) return;
      for (const part of chunk(queued, (q) => 32 + encodedSize(q.val))) {
        for (const q of part) this.#inFlight.set(q.c, q);
        conn.send({ type: SyncType.Changes, list: part.map((q) => [q.c, q.e, q.n, q.base, q.val]) });
      }
    } catch (err) {
      this.#o.log.error(toMfpError(err, 'STORE_WRITE_FAILED').code, `cannot send queued changes: ${(err as Error).message}`);
    } finally {
      this.#flushing = false;
      // A change queued while this flush read the queue is sent now rather than at the next ack (also
      // when this flush found nothing: its read may have preceded that change's write).
      if (this.#flushAgain) void this.#flush();
    }
  }

  #sendFetches(): void {
    const conn = this.#conn;
    if (!conn) return;
    for (const [e, { login }] of this.#pendingFetch) {
      // A user told to log in again is repaired: the server's whole copy, whatever the versions say.
      const repair = login && e.startsWith('u:') && this.#loginAgain.get(e.slice(2))?.reason === 'checksum';
      const have = repair ? [] : [...(this.#o.store.itemStates(e) ?? new Map())].map(([n, s]) => [n, s.v] as [string, number]);
      if (conn.send({ type: SyncType.Fetch, e, have })) this.#fetching.push({ e, login, repair });
      else this.#fetching.push({ e, login, repair: false });
    }
    this.#pendingFetch.clear();
  }
}

function groupMismatch(pinned: string, presented: string): MfpError {
  return new MfpError('GROUP_MISMATCH', `the server belongs to group ${presented}, this client to ${pinned}: run \`mfpsync role set client\` again with the administrator account to join it`);
}

function emptySnapshot(): { items: SnapshotItem[]; replace: Set<EntityKey>; done: Set<EntityKey> } {
  return { items: [], replace: new Set(), done: new Set() };
}

function toRemote([e, n, v, val]: SnapshotItem): RemoteItem {
  return { e, n, v, val };
}
