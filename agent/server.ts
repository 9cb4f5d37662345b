/**
 * The server role: accepts clients over WebSocket, admits them, runs joins one at a time, applies
 * their changes to the group store and fans committed changes out to every client holding the entity.
 *
 * Fan-out is log-tailing: each session has a cursor and a pump that sends the committed entries after
 * it (from the store's in-memory ring when recent, else from the log). Resume after a disconnect and
 * live delivery are the same code path, so a client never misses or reorders a change.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { encodeMessage, encodeValue, decodeValue, wireValue, type Message } from '../protocol/codec.js';
import { MfpError } from '../protocol/errors.js';
import { HeartbeatType, type SleepMessage } from '../protocol/heartbeat.js';
import {
  HANDSHAKE_TIMEOUT_MS, MAX_CLOCK_SKEW_MS, MAX_FRAME_BYTES, MAX_GROUP_DEVICES, MIN_PROTOCOL_VERSION, MISSED_HEARTBEATS,
  PROTOCOL_VERSION,
} from '../protocol/limits.js';
import { ephemeralKeyPair, SecureChannel, sessionCipher } from '../protocol/secure.js';
import { authSettingsMismatch, readHelloBody, SessionType, type ChallengeMessage, type HelloBody, type ResumeMode, type SharingState, type WelcomeBody } from '../protocol/session.js';
import {
  AckStatus, Chunker, chunk, rejectedAck, SyncType, type AckEntry, type DeltaEntry, type FetchMessage, type JoinOfferMessage,
  type SnapshotItem, type UploadMessage,
} from '../protocol/sync.js';
import { capabilitiesFor, kindOfKey, parseEntity, type EntityKey } from '../storage/catalog.js';
import { feedValueSize, isValidChange, type ChangeOutcome, type DeviceRecord, type FeedEntry, type GroupStore } from '../storage/group-store.js';
import { entityHash, splitItemRecord } from '../storage/records.js';
import type { Timer } from './clock.js';
import { Connection } from './connection.js';
import { listen, type Listener, type ListeningRoleOptions, type Place } from './listener.js';
import { deviceIdOf, serverProof, signParts, verifyParts, type Identity } from './identity.js';
import { PowerMonitor, type ClientPower, type DeepSleepState } from './power.js';

/** Options of a server. */
export interface SyncServerOptions extends ListeningRoleOptions {
  store: GroupStore;
  /** The group's signing key. */
  groupKey: Identity;
  groupId: string;
  /** A client became operating, sleeping or offline (SPEC §5). */
  onPower?: (deviceId: string, power: ClientPower) => void;
  /** A client (not the server's own) completed its handshake: it started, woke or reconnected. */
  onSession?: (deviceId: string, resume: ResumeMode) => void;
}

/** A connected machine, as `devices list` shows it. */
export interface SessionInfo {
  deviceId: string;
  state: 'joining' | 'live';
  connectedAt: number;
  lastHeartbeat: number;
  skewMs: number;
  cursor: number;
  /** What this session was sent: change entries of deltas, and items of snapshots (join, resync, login fetch). */
  sent: { deltas: number; items: number };
}

/** Debounce of cursor-only notices. */
const CURSOR_NOTICE_MS = 250;

type Phase = 'handshake' | 'join-offer' | 'join-upload' | 'live';

class Session {
  phase: Phase = 'handshake';
  device!: DeviceRecord;
  hello!: HelloBody;
  capabilities = new Set<string>();
  cursor = 0;
  /** Highest cursor the client was told of. */
  toldCursor = 0;
  /** The first pump after the session went live: its catch-up ends with an immediate cursor notice. */
  catchingUp = true;
  cursorTimer: Timer | undefined;
  pumping = false;
  pumpAgain = false;
  connectedAt = 0;
  lastHeartbeat = 0;
  skewMs = 0;
  /** A CLOCK_SKEW warning was logged for this session (once per session, not per heartbeat). */
  skewWarned = false;
  /** The client said it goes to sleep; the session ends. */
  sleeping = false;
  /** Change entries (deltas) and snapshot items sent in this session. */
  readonly sent = { deltas: 0, items: 0 };
  deadline: Timer | undefined;
  plan: { upload: Set<EntityKey>; replace: Set<EntityKey>; same: Set<EntityKey> } | undefined;
  releaseJoinLock: (() => void) | undefined;
  constructor(
    readonly conn: Connection,
    readonly nonce: Uint8Array,
    readonly challenge: Uint8Array,
    readonly ephemeral: ReturnType<typeof ephemeralKeyPair>,
    /** The connection's place in the listener: a handshake in progress until the welcome. */
    readonly place: Place,
    readonly remote: string,
  ) {}
}

/** The server role. */
export class SyncServer {
  readonly #o: SyncServerOptions;
  #listener: Listener | undefined;
  #sessions = new Set<Session>();
  #joinLock: Promise<void> = Promise.resolve();
  /** The join queued last, and whether it ended (the next one waits for it). */
  #lastJoin: { session: Session; done: boolean } | undefined;
  #unsubscribe: (() => void) | undefined;
  /**
   * New devices past the GROUP_FULL check whose record is not written yet, by id: counted as members,
   * so that admissions checked at once cannot together exceed the bound.
   */
  readonly #admitting = new Map<string, number>();
  /** The group's sharing scopes; device-scope items never travel from the shared copy. */
  #sharing: SharingState = { version: 0, device: [] };
  readonly #power: PowerMonitor;
  /** Wire bytes of closed sessions plus live ones, for the benchmark. */
  readonly stats = { sentBytes: 0 };

  constructor(options: SyncServerOptions) {
    this.#o = options;
    this.#power = new PowerMonitor({ clock: options.clock, onChange: (id, p) => options.onPower?.(id, p) });
  }

  /** The port actually bound (for port 0). */
  get port(): number {
    return this.#listener?.port ?? this.#o.port;
  }

  /** The sharing scopes in force (after `sharing set`, with no client connected). */
  setSharing(state: SharingState): void {
    this.#sharing = state;
  }

  /** Starts listening. Throws ADDRESS_INCORRECT when the port cannot be bound. */
  async start(): Promise<void> {
    this.#sharing = await this.#o.store.sharing();
    this.#listener = await listen({
      host: this.#o.host,
      port: this.#o.port,
      ...(this.#o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#o.handshakeTimeoutMs } : {}),
      log: this.#o.log,
      onConnection: (ws, req, place) => this.#accept(ws, req, place),
    });
    this.#unsubscribe = this.#o.store.onCommit(() => {
      for (const s of this.#sessions) if (s.phase === 'live') void this.#pump(s);
    });
  }

  /** Stops: closes every session and the listener. */
  async stop(): Promise<void> {
    this.#power.stop();
    this.#unsubscribe?.();
    for (const s of this.#sessions) s.conn.close();
    this.#sessions.clear();
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.close();
  }

  /** Connected machines other than the server's own client. */
  sessions(options: { includeSelf?: boolean } = {}): SessionInfo[] {
    return [...this.#sessions]
      .filter((s) => s.phase !== 'handshake' && (options.includeSelf || !s.device.self))
      .map((s) => ({
        deviceId: s.device.id,
        state: s.phase === 'live' ? 'live' : 'joining',
        connectedAt: s.connectedAt,
        lastHeartbeat: s.lastHeartbeat,
        skewMs: s.skewMs,
        cursor: s.cursor,
        sent: { ...s.sent },
      }));
  }

  /** Whether deep sleep is blocked (a client is operating), and every client's power state. */
  power(): { deepSleep: DeepSleepState; clients: ClientPower[] } {
    return { deepSleep: this.#power.deepSleep(), clients: this.#power.all() };
  }

  /** Disconnects a device's session (after `devices remove`). */
  disconnect(deviceId: string, code: 'DEVICE_REMOVED'): void {
    this.#power.forget(deviceId);
    for (const s of this.#sessions) {
      if (s.phase !== 'handshake' && s.device.id === deviceId) s.conn.refuse(code, 'this device was removed from the group');
    }
  }

  // ---- handshake -----------------------------------------------------------------------------------

  /** A WebSocket the listener let in: its handshake counts there (per source and in total) until the welcome. */
  #accept(ws: WebSocket, req: IncomingMessage, place: Place): void {
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const nonce = randomBytes(32);
    const ephemeral = ephemeralKeyPair();
    const challenge: ChallengeMessage = {
      type: SessionType.Challenge,
      protocol: PROTOCOL_VERSION,
      minProtocol: MIN_PROTOCOL_VERSION,
      serverId: this.#o.identity.deviceId,
      groupId: this.#o.groupId,
      nonce,
      salt: Buffer.from(this.#o.admin.salt, 'base64'),
      ephemeral: ephemeral.publicKey,
    };
    const challengeBytes = encodeMessage(challenge);
    // The connection's callbacks close over the session, which needs the connection: assigned below.
    // eslint-disable-next-line prefer-const
    let session!: Session;
    const conn = new Connection(ws, {
      onMessage: (m) => this.#onMessage(session, m),
      onClose: (reason) => this.#onClose(session, reason),
      // A ping is answered at once, even while this client's join waits for another's.
      outOfOrder: (m) => m.type === HeartbeatType.Ping && session.phase !== 'handshake',
    });
    session = new Session(conn, nonce, challengeBytes, ephemeral, place, remote);
    const timeout = this.#o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    session.deadline = this.#o.clock.setTimeout(() => {
      if (session.phase === 'handshake') conn.refuse('HANDSHAKE_TIMEOUT', `no hello within ${timeout} ms`);
    }, timeout);
    this.#sessions.add(session);
    conn.sendBytes(challengeBytes);
  }

  #onClose(s: Session, reason: MfpError | undefined): void {
    s.deadline?.cancel();
    s.cursorTimer?.cancel();
    s.releaseJoinLock?.();
    s.releaseJoinLock = undefined;
    this.#sessions.delete(s);
    this.stats.sentBytes += s.conn.bytes.sent;
    if (s.device && s.phase !== 'handshake') {
      const rec = this.#o.store.device(s.device.id);
      if (rec) void this.#o.store.putDevice({ ...rec, lastSeen: s.lastHeartbeat, cursor: s.cursor }, { sync: false }).catch(() => undefined);
      if (reason && reason.code !== 'PEER_GONE') this.#o.log.warning(reason.code, `session of ${s.device.id} ended: ${reason.message}`, { deviceId: s.device.id });
      else if (!s.sleeping) this.#o.log.info('DISCONNECTED', `${s.device.name} (${s.device.id}) disconnected`, { deviceId: s.device.id });
    }
  }

  async #onMessage(s: Session, m: Message): Promise<void> {
    if (s.phase === 'handshake') {
      if (m.type !== SessionType.Hello) throw new MfpError('MESSAGE_UNEXPECTED', `expected hello, got ${m.type}`);
      await this.#hello(s, m.body, m.sig);
      return;
    }
    // A client going to sleep is not heard: it stops counting as operating from this frame on.
    if (m.type === HeartbeatType.Sleep) return this.#sleep(s, m);
    this.#heard(s);
    switch (m.type) {
      case HeartbeatType.Ping: {
        this.#skew(s, m.at);
        s.conn.send({ type: HeartbeatType.Pong, at: this.#o.clock.now(), echo: m.at });
        return;
      }
      case SyncType.JoinOffer:
        return this.#joinOffer(s, m);
      case SyncType.Upload:
        return this.#upload(s, m);
      case SyncType.Changes:
        return this.#changes(s, m.list);
      case SyncType.Fetch:
        return this.#fetch(s, m);
      case SyncType.Release:
        return this.#o.store.updateHolds(s.device.id, [], m.entities);
      default:
        throw new MfpError('MESSAGE_UNEXPECTED', `${m.type} is not accepted by a server`);
    }
  }

  /** Records a client's clock skew; one beyond the bound is a Warning, once per session. */
  #skew(s: Session, at: number): void {
    s.skewMs = at - this.#o.clock.now();
    this.#power.skew(s.device.id, s.skewMs);
    if (s.skewWarned || Math.abs(s.skewMs) <= MAX_CLOCK_SKEW_MS) return;
    s.skewWarned = true;
    const seconds = Math.round(Math.abs(s.skewMs) / 1000);
    this.#o.log.warning(
      'CLOCK_SKEW',
      `${s.device.name} (${s.device.id}): its clock is ${seconds} s ${s.skewMs > 0 ? 'ahead of' : 'behind'} the server's (bound ${MAX_CLOCK_SKEW_MS / 1000} s); set the time (SNTP)`,
      { deviceId: s.device.id },
    );
  }

  /** The client's machine goes to sleep: it no longer blocks deep sleep; closing the session acknowledges it. */
  #sleep(s: Session, m: SleepMessage): void {
    s.sleeping = true;
    this.#skew(s, m.at);
    this.#power.sleeping(s.device.id);
    this.#o.log.info('SLEEPING', `${s.device.name} (${s.device.id}) goes to sleep`, { deviceId: s.device.id });
    s.conn.close();
  }

  #heard(s: Session): void {
    s.lastHeartbeat = this.#o.clock.now();
    this.#power.heartbeat(s.device.id, s.hello.heartbeat);
    s.deadline?.cancel();
    const limit = s.hello.heartbeat * 1000 * MISSED_HEARTBEATS;
    s.deadline = this.#o.clock.setTimeout(() => {
      this.#o.log.warning('HEARTBEAT_MISSED', `${s.device.name} (${s.device.id}) missed ${MISSED_HEARTBEATS} heartbeats`, { deviceId: s.device.id });
      s.conn.terminate(new MfpError('PEER_GONE', 'heartbeats missed'));
    }, limit);
  }

  async #hello(s: Session, bodyBytes: Uint8Array, sig: Uint8Array): Promise<void> {
    const hello = readHelloBody(decodeValue(bodyBytes));
    const store = this.#o.store;
    if (deviceIdOf(hello.publicKey) !== hello.deviceId || !verifyParts(hello.publicKey, sig, s.challenge, bodyBytes)) {
      throw new MfpError('AUTH_INCORRECT', 'the hello\'s signature does not verify: altered in transit, or not signed by the device it names');
    }
    if (hello.protocol < MIN_PROTOCOL_VERSION || hello.minProtocol > PROTOCOL_VERSION) {
      throw new MfpError('PROTOCOL_UNSUPPORTED', `client speaks ${hello.minProtocol}-${hello.protocol}, server ${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION}`);
    }
    const mismatch = authSettingsMismatch(this.#o.settings, hello.settings);
    if (mismatch) throw mismatch;
    const self = hello.deviceId === this.#o.identity.deviceId;
    let device = store.device(hello.deviceId);
    let admitted = false;
    if (device && Buffer.from(device.publicKey, 'base64').compare(hello.publicKey) !== 0) {
      throw new MfpError('DEVICE_KEY_MISMATCH', `device ${hello.deviceId} is known under another key`, { deviceId: hello.deviceId });
    }
    // Administrator credentials, whenever given, are checked (and rate limited), even for a known device.
    if (hello.admission) await this.#admit(s, hello.deviceId, hello.admission);
    // The peer may be gone by now: its session was closed and forgotten, and must not come back to life.
    if (s.conn.closed) return;
    if (!device && !self) {
      if (!hello.admission) {
        if (store.isRemoved(hello.deviceId)) throw new MfpError('DEVICE_REMOVED', 'this device was removed from the group; re-admit it with the administrator account', { deviceId: hello.deviceId });
        throw new MfpError('AUTH_INCORRECT', 'unknown device: the first connection needs the administrator account', { deviceId: hello.deviceId });
      }
      const others = new Set([...store.devices().filter((d) => !d.self).map((d) => d.id), ...this.#admitting.keys()]);
      others.delete(hello.deviceId);
      if (others.size + 1 >= MAX_GROUP_DEVICES) {
        this.#o.log.error('GROUP_FULL', `device ${hello.name} (${hello.deviceId}) refused: the group has ${MAX_GROUP_DEVICES} machines`, { deviceId: hello.deviceId });
        throw new MfpError('GROUP_FULL', `the group already has ${MAX_GROUP_DEVICES} machines, the server included; remove one with \`mfpsync devices remove\``, { deviceId: hello.deviceId });
      }
      admitted = true;
      this.#admitting.set(hello.deviceId, (this.#admitting.get(hello.deviceId) ?? 0) + 1);
    }
    const now = this.#o.clock.now();
    device = {
      id: hello.deviceId,
      publicKey: Buffer.from(hello.publicKey).toString('base64'),
      name: hello.name,
      serial: hello.serial,
      location: hello.location,
      software: hello.software,
      protocol: Math.min(hello.protocol, PROTOCOL_VERSION),
      capabilities: hello.capabilities,
      admittedAt: device?.admittedAt ?? now,
      lastSeen: now,
      lastCounter: device?.lastCounter ?? 0,
      cursor: hello.cursor,
      ...(self ? { self: true } : {}),
    };
    try {
      await store.putDevice(device);
    } finally {
      if (admitted) this.#doneAdmitting(hello.deviceId);
    }
    if (s.conn.closed) return;
    // One session per device: a reconnect replaces a half-dead older one.
    for (const other of this.#sessions) {
      if (other !== s && other.phase !== 'handshake' && other.device.id === device.id) other.conn.terminate(new MfpError('PEER_GONE', 'replaced by a new session'));
    }
    // A client that has not applied the current sharing scopes resyncs by checksum, after its own part of
    // the transition (SPEC §4): what it must now share or keep is compared, not assumed.
    const resume: ResumeMode =
      admitted || hello.groupId !== this.#o.groupId || hello.epoch === null
        ? 'join'
        : hello.epoch === store.epoch && hello.cursor <= store.seq && hello.sharingVersion === this.#sharing.version
          ? 'cursor'
          : 'checksum';
    const protocol = Math.min(hello.protocol, PROTOCOL_VERSION);
    const ours = new Set(capabilitiesFor(protocol));
    s.capabilities = new Set(hello.capabilities.filter((c) => ours.has(c)));
    s.device = device;
    s.hello = hello;
    s.connectedAt = now;
    const welcome: WelcomeBody = {
      protocol,
      capabilities: [...s.capabilities],
      groupId: this.#o.groupId,
      groupKey: this.#o.groupKey.publicKey,
      epoch: store.epoch,
      seq: store.seq,
      lastCounter: device.lastCounter,
      resume,
      adminProof: hello.admission
        ? serverProof(Buffer.from(this.#o.admin.serverKey, 'base64'), s.nonce, hello.deviceId, this.#o.groupKey.publicKey)
        : null,
      sharing: this.#sharing,
    };
    const body = encodeValue(welcome);
    const wsig = signParts(this.#o.groupKey.secretKey, s.challenge, bodyBytes, body);
    const channel = SecureChannel.derive('server', s.ephemeral, hello.ephemeral, [s.challenge, bodyBytes], sessionCipher(protocol));
    s.place.authenticated();
    s.phase = resume === 'cursor' ? 'live' : 'join-offer';
    s.cursor = hello.cursor;
    s.toldCursor = hello.cursor;
    this.#heard(s);
    // The welcome is the last frame in clear; everything after it is sealed.
    s.conn.send({ type: SessionType.Welcome, body, sig: wsig });
    s.conn.secure(channel, MAX_FRAME_BYTES, protocol);
    this.#o.log.info(
      admitted ? 'ADMITTED' : 'CONNECTED',
      `${device.name} (${device.id}) ${admitted ? 'admitted' : 'connected'}, resuming by ${resume}`,
      { deviceId: device.id },
    );
    if (s.phase === 'live') void this.#pump(s);
    if (!device.self) this.#o.onSession?.(device.id, resume);
  }

  /** A new device's record is written (or failed to be): it no longer needs its place among the admitting. */
  #doneAdmitting(deviceId: string): void {
    const n = this.#admitting.get(deviceId)! - 1;
    if (n === 0) this.#admitting.delete(deviceId);
    else this.#admitting.set(deviceId, n);
  }

  /** Checks administrator credentials under the agent's rate limit; throws AUTH_LOCKED or AUTH_INCORRECT. */
  #admit(s: Session, deviceId: string, admission: { user: string; proof: Uint8Array }): Promise<void> {
    return this.#o.limiter.admit({ admin: this.#o.admin, address: s.place.source, remote: s.remote, deviceId, admission, nonce: s.nonce });
  }

  // ---- join ----------------------------------------------------------------------------------------

  async #joinOffer(s: Session, m: JoinOfferMessage): Promise<void> {
    if (s.phase !== 'join-offer') throw new MfpError('MESSAGE_UNEXPECTED', 'join-offer outside a join');
    // Joins run one at a time: of two clients offering the same user, the first to connect wins.
    const previous = this.#joinLock;
    const ahead = this.#lastJoin;
    const mine = { session: s, done: false };
    let unlock!: () => void;
    this.#joinLock = new Promise<void>((r) => (unlock = r));
    this.#lastJoin = mine;
    const release = () => {
      mine.done = true;
      if (this.#lastJoin === mine) this.#lastJoin = undefined;
      unlock();
    };
    s.releaseJoinLock = release;
    if (ahead && !ahead.done) {
      this.#o.log.info('JOIN_WAITING', `${s.device.name} (${s.device.id}) waits for the join of ${ahead.session.device.name} (${ahead.session.device.id}): joins run one at a time`, { deviceId: s.device.id });
    }
    await previous;
    if (s.conn.closed) return release();
    const store = this.#o.store;
    const upload = new Set<EntityKey>();
    const replace = new Set<EntityKey>();
    const same = new Set<EntityKey>();
    for (const [e, hash] of m.entities) {
      if (!parseEntity(e)) throw new MfpError('MESSAGE_INVALID', `join-offer names a malformed entity ${JSON.stringify(e)}`);
      // Compared over the items this client knows: an older model never sees the newer ones.
      const ours = store.entityHash(e, (n) => this.#knows(s, e, n));
      if (ours === undefined) upload.add(e);
      else if (ours === hash) same.add(e);
      else replace.add(e);
    }
    const held = m.entities.map(([e]) => e).filter((e) => parseEntity(e)!.kind === 'user');
    await store.updateHolds(s.device.id, held);
    s.plan = { upload, replace, same };
    s.conn.send({ type: SyncType.JoinPlan, upload: [...upload], replace: [...replace] });
    if (upload.size === 0) await this.#finishJoin(s);
    else s.phase = 'join-upload';
  }

  async #upload(s: Session, m: UploadMessage): Promise<void> {
    if (s.phase !== 'join-upload' || !s.plan) throw new MfpError('MESSAGE_UNEXPECTED', 'upload outside a join');
    const wanted = m.entities.filter((u) => s.plan!.upload.delete(u.e));
    // Device-scope items of an uploaded user are this device's own: kept as its copies, not shared.
    const copies: { user: string; item: string; val: unknown }[] = [];
    const shared = wanted.map((u) => {
      const items: Record<string, unknown> = {};
      for (const [n, val] of Object.entries(u.items)) {
        if (this.#deviceScoped(u.e, n)) copies.push({ user: u.e.slice(2), item: n, val });
        else items[n] = val;
      }
      return { e: u.e, items };
    });
    // A copy refused (its value does not match the item) is not kept; the shared items still go up.
    if (copies.length > 0) await this.#o.store.putCopies(s.device.id, copies);
    const { created, skipped, refused } = await this.#o.store.createEntities(s.device.id, shared);
    for (const e of skipped) s.plan.replace.add(e);
    s.conn.send({ type: SyncType.UploadAck, created, skipped });
    if (created.length > 0) this.#o.log.info('JOIN_UPLOAD', `${s.device.name} uploaded ${created.length} entities`, { deviceId: s.device.id });
    if (refused.length > 0) {
      const more = refused.length > 1 ? ` (${refused.length} users of this upload refused; the client keeps them and offers them at its next join)` : '';
      this.#o.log.error('USER_LIMIT_REACHED', `${s.device.name} (${s.device.id}): upload refused: ${refused[0]!.message}${more}`, { deviceId: s.device.id });
    }
    if (m.final) await this.#finishJoin(s);
  }

  /** Sends the join snapshot: replaced entities whole, identical ones as versions, groups and shared items. */
  async #finishJoin(s: Session): Promise<void> {
    const store = this.#o.store;
    const plan = s.plan!;
    const seq = store.seq;
    const versions: [string, string, number][] = [];
    const offered = new Set([...plan.replace, ...plan.same, ...plan.upload]);
    const shared = store.entities().filter((e) => parseEntity(e)!.kind !== 'user' && !offered.has(e));
    for (const e of plan.same) {
      for (const [n, st] of store.itemStates(e) ?? []) if (this.#knows(s, e, n)) versions.push([e, n, st.v]);
    }
    // This device's own copies of device-scope items: a machine that lost its store gets them back.
    const copies = (await store.copiesOf(s.device.id))
      .filter((c) => this.#sharing.device.includes(c.item))
      .map((c) => [`u:${c.user}`, c.item, c.val] as [string, string, unknown]);
    const reason = s.hello.epoch === null || s.hello.groupId !== this.#o.groupId ? 'join' : 'checksum';
    let first = true;
    const send = (items: SnapshotItem[], final: boolean) => {
      s.sent.items += items.length;
      s.conn.send({
        type: SyncType.Snapshot,
        reason,
        items,
        replace: first ? [...plan.replace] : [],
        deletes: [],
        versions: final ? versions : [],
        copies: final ? copies : [],
        final,
        seq,
      });
      first = false;
    };
    // Replaced entities whole, and the group's shared entities: each frame goes out as soon as it is
    // full, while the store is read on (the client applies it meanwhile). Sizes come from the stored
    // records, so no value is encoded twice.
    const chunker = new Chunker<SnapshotItem>();
    await store.scanEntities([...plan.replace, ...shared], (e, n, bytes, key) => {
      if (!this.#knows(s, e, n)) return;
      const rec = splitItemRecord(bytes, key);
      const full = chunker.add([e, n, rec.head.v, wireValue(rec)], 32 + bytes.length);
      if (full) send(full, false);
    });
    send(chunker.rest(), true);
    s.plan = undefined;
    s.cursor = seq;
    s.toldCursor = seq;
    s.phase = 'live';
    s.releaseJoinLock?.();
    s.releaseJoinLock = undefined;
    this.#o.log.info('JOINED', `${s.device.name} (${s.device.id}) synchronized: ${plan.replace.size} replaced, ${plan.same.size} identical`, { deviceId: s.device.id });
    void this.#pump(s);
  }

  // ---- live ----------------------------------------------------------------------------------------

  async #changes(s: Session, list: readonly [number, string, string, number, unknown][]): Promise<void> {
    if (s.phase !== 'live') throw new MfpError('MESSAGE_UNEXPECTED', 'changes before the session is live');
    const all = list.map(([c, e, n, base, val]) => ({ c, e, n, base, val }));
    // Holds are not recorded here: the store records one with each accepted change, in its batch, so a
    // refused change leaves nothing behind (SPEC §6).
    // Changes of device-scope items are this device's own (SPEC §4): kept as its copies, never shared.
    // One the group store would refuse goes there all the same, to be answered rejected like any other
    // (and kept in the conflict log); putCopies checks what it stores once more and returns refusals.
    const own = all.filter((c) => this.#deviceScoped(c.e, c.n) && isValidChange(c));
    const ownSet = new Set(own);
    const changes = all.filter((c) => !ownSet.has(c));
    const ownRefused = own.length > 0 ? await this.#o.store.putCopies(s.device.id, own.map((c) => ({ user: c.e.slice(2), item: c.n, val: c.val }))) : [];
    const { outcomes: shared } = changes.length > 0 ? await this.#o.store.applyChanges(s.device.id, changes) : { outcomes: [] };
    const ownOutcomes: ChangeOutcome[] = own.map((c) => ({ c: c.c, status: 'applied', v: 0 }));
    for (const r of ownRefused) ownOutcomes[r.i] = { c: own[r.i]!.c, status: 'rejected', code: r.code, message: r.message };
    const outcomes = [...shared, ...ownOutcomes].sort((a, b) => a.c - b.c);
    const acks: AckEntry[] = outcomes.map((o) => {
      switch (o.status) {
        case 'applied': return [o.c, AckStatus.Applied, o.v, null];
        case 'duplicate': return [o.c, AckStatus.Duplicate, o.v, o.val];
        case 'conflict': return [o.c, AckStatus.Conflict, o.v, o.val];
        case 'rejected': return rejectedAck(o.c, o.code, o.message);
      }
    });
    const refused = new Map<string, { n: number; message: string }>();
    for (const o of outcomes) {
      if (o.status === 'conflict') {
        const ch = changes.find((c) => c.c === o.c)!;
        this.#o.log.warning('CONFLICT', `${s.device.name}: offline edit of ${ch.e} ${ch.n} lost to version ${o.v}; kept in the conflict log`, { deviceId: s.device.id });
      } else if (o.status === 'rejected') {
        const r = refused.get(o.code);
        if (r) r.n++;
        else refused.set(o.code, { n: 1, message: o.message });
      }
    }
    // One Error per code and frame, not per change: a peer's refused burst cannot push the rest of the
    // bounded sync log out.
    for (const [code, r] of refused) {
      const more = r.n > 1 ? ` (and ${r.n - 1} more refused with ${code} in this frame)` : '';
      this.#o.log.error(code, `${s.device.name} (${s.device.id}): change refused: ${r.message}${more}`, { deviceId: s.device.id });
    }
    s.conn.send({ type: SyncType.Ack, list: acks });
  }

  async #fetch(s: Session, m: FetchMessage): Promise<void> {
    if (s.phase !== 'live') throw new MfpError('MESSAGE_UNEXPECTED', 'fetch before the session is live');
    const entity = parseEntity(m.e);
    if (!entity) throw new MfpError('MESSAGE_INVALID', `fetch names a malformed entity ${JSON.stringify(m.e)}`);
    const store = this.#o.store;
    // Hold first, read second: a change committed in between is sent twice at worst, never missed. A
    // user the group does not have is only wanted (memory, bounded) and not created: a login of a user
    // with no data leaves nothing on the server (SPEC §6), yet gets the user's data if another machine
    // creates it while this server runs.
    await store.updateHolds(s.device.id, [m.e]);
    if (entity.kind === 'user') await store.touchUser(entity.id);
    const have = new Map(m.have);
    const items: SnapshotItem[] = [];
    // The checksum of what was read, item hashes from the same records: the client compares its copy.
    const hashes: [string, string][] = [];
    await store.scanEntities([m.e], (e, n, bytes, key) => {
      if (!this.#knows(s, e, n)) return;
      const rec = splitItemRecord(bytes, key);
      hashes.push([n, rec.head.h]);
      if (have.get(n) !== rec.head.v) items.push([e, n, rec.head.v, wireValue(rec)]);
    });
    const checks: [string, string | null][] = [[m.e, hashes.length > 0 ? entityHash(hashes) : null]];
    s.sent.items += items.length;
    s.conn.send({ type: SyncType.Snapshot, reason: 'fetch', items, replace: [], deletes: [], versions: [], copies: [], final: true, seq: store.seq, checks });
  }

  /** Whether the client is sent this item from the group's copy: it knows it, and it is shared. */
  #knows(s: Session, e: EntityKey, n: string): boolean {
    return s.capabilities.has(`${kindOfKey(e)}:${n}`) && !this.#deviceScoped(e, n);
  }

  #deviceScoped(e: EntityKey, n: string): boolean {
    return e.startsWith('u:') && this.#sharing.device.includes(n);
  }

  #visible(s: Session, entry: FeedEntry): boolean {
    if (entry.by === s.device.id) return false;
    // Tombstones go to every client: holds were dropped with the entity, and a client ignores the unknown.
    if (entry.del) return true;
    if (!this.#knows(s, entry.e, entry.n!)) return false;
    return kindOfKey(entry.e) !== 'user' || this.#o.store.isHeld(s.device.id, entry.e);
  }

  /** Sends every committed entry after the session's cursor that the client should see. */
  async #pump(s: Session): Promise<void> {
    if (s.pumping) {
      s.pumpAgain = true;
      return;
    }
    s.pumping = true;
    try {
      do {
        s.pumpAgain = false;
        const store = this.#o.store;
        while (s.phase === 'live' && !s.conn.closed && s.cursor < store.seq) {
          await s.conn.drained();
          const entries = await store.entriesAfter(s.cursor, 512);
          if (entries.length === 0) break;
          const visible = entries.filter((e) => this.#visible(s, e));
          const last = entries[entries.length - 1]!.seq;
          const parts = visible.length === 0 ? [] : chunk(visible, (e) => 24 + feedValueSize(e));
          for (let i = 0; i < parts.length; i++) {
            const part = parts[i]!;
            const list = part.map((e): DeltaEntry => (e.del ? [e.seq, e.e, null, null] : [e.seq, e.e, e.n!, e.val]));
            s.sent.deltas += list.length;
            s.conn.send({ type: SyncType.Deltas, list, seq: i === parts.length - 1 ? last : part[part.length - 1]!.seq });
          }
          s.cursor = last;
          if (parts.length > 0) s.toldCursor = last;
        }
      } while (s.pumpAgain);
    } finally {
      s.pumping = false;
    }
    this.#tellCursor(s);
  }

  /**
   * Entries the client does not hold advance its cursor without a frame; it is told the new cursor a
   * moment later (debounced, so other users' traffic costs it a few small frames a second at most), so
   * that a reconnect resumes from there instead of re-sending what it fetched at login since. The
   * catch-up after a (re)connect is told at once: the client is then exactly where the server is.
   */
  #tellCursor(s: Session): void {
    if (s.catchingUp && !s.pumping && !s.pumpAgain && s.phase === 'live') {
      s.catchingUp = false;
      if (s.cursor > s.toldCursor && !s.conn.closed) {
        s.toldCursor = s.cursor;
        s.conn.send({ type: SyncType.Deltas, list: [], seq: s.cursor });
      }
      return;
    }
    if (s.cursor <= s.toldCursor || s.cursorTimer || s.conn.closed) return;
    s.cursorTimer = this.#o.clock.setTimeout(() => {
      s.cursorTimer = undefined;
      if (s.pumping || s.conn.closed || s.cursor <= s.toldCursor) return;
      s.toldCursor = s.cursor;
      s.conn.send({ type: SyncType.Deltas, list: [], seq: s.cursor });
    }, CURSOR_NOTICE_MS);
  }
}
