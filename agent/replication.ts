/**
 * Replication sessions (SPEC §9): the replica's listener, a server's push of its image to it, and a
 * new server's pull of a replica's image (recovery). The message flow is in protocol/replication.ts;
 * images, digests and the all-or-nothing install in storage/image.ts.
 *
 * Trust: the first push is admitted with the replica's administrator account (SCRAM both ways, as a
 * client's admission); once that push is installed the replica pins the group (its id is bound to the
 * group key, which signs every push) and the server pins the replica's device key (which signs every
 * welcome). Neither side pins before the first copy completed: a first push cut part-way leaves both
 * unpaired, and the next needs the administrator account again. A replica
 * pinned to one group refuses every other (DEST_UNSUPPORTED) until that group's server releases it
 * (`replication stop`: a hello signed by the group key, purpose `release`) or its role changes. A pull
 * always needs the replica's administrator account: whoever recovers gets the group's key.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { decodeValue, encodeMessage, encodeValue, type Message } from '../protocol/codec.js';
import { MfpError } from '../protocol/errors.js';
import { CHUNK_BYTES, HANDSHAKE_TIMEOUT_MS, MAX_FRAME_BYTES } from '../protocol/limits.js';
import { ITEM_CODES_PROTOCOL } from '../protocol/sync.js';
import {
  MIN_REPLICATION_PROTOCOL, readReplHelloBody, readReplWelcomeBody, RELEASE_PROTOCOL, REPLICATION_PROTOCOL, ReplicationType,
  type DigestEntry, type ImageCounts, type ReplChallengeMessage, type ReplCommitMessage, type ReplHelloBody, type ReplWelcomeBody,
} from '../protocol/replication.js';
import { CHACHA_PROTOCOL, ephemeralKeyPair, replicationCipher, SecureChannel } from '../protocol/secure.js';
import { SessionType } from '../protocol/session.js';
import { ImageDigest, ImageReceiver, imageEntries, bucketsToSend, REPLICATED_KEY, sameDigest, type EntrySource } from '../storage/image.js';
import type { KvSnapshot, KvStore } from '../storage/kv.js';
import { Keys } from '../storage/keys.js';
import { decodeRecord, encodeRecord } from '../storage/records.js';
import type { Store } from '../storage/store.js';
import type { ServerAddress } from './client.js';
import { Connection } from './connection.js';
import { admissionProof, checkServerProof, deviceIdOf, serverProof, signParts, verifyParts, type Identity } from './identity.js';
import { listen, type Listener, type ListeningRoleOptions, type Place } from './listener.js';

/** The four cases of the manual in which a machine cannot be the destination of replication. */
export type DestCase = 'server' | 'paired' | 'old-version' | 'department-ids';

/** The manual's start error for DEST_UNSUPPORTED. */
export const DEST_UNSUPPORTED_MESSAGE = 'A device that cannot be used as the destination for replication is set. Select a different device.';

const DEST_CASES: Record<DestCase, string> = {
  server: 'the machine has started custom setting synchronization (server)',
  paired: 'another server is set as the replication destination of the machine (it is the destination of another server)',
  'old-version': 'the version of the machine is old',
  'department-ids': '<Department ID Management> is enabled on the machine',
};

/** DEST_UNSUPPORTED with the manual's message, which of its four cases, and the detail. */
export function destUnsupported(which: DestCase, detail: string): MfpError {
  return new MfpError('DEST_UNSUPPORTED', `${DEST_UNSUPPORTED_MESSAGE} Case: ${DEST_CASES[which]} — ${detail}`);
}

/**
 * The replication protocol an agent speaks: an agent run with an older sync protocol (`run --protocol
 * N`, simulating older firmware) speaks the replication protocol of that firmware, 1.
 */
export function replicationProtocolFor(syncProtocol: number): number {
  // Sync protocol 4 came with replication 3 (ChaCha20-Poly1305), 3 with replication 2 (`release`).
  if (syncProtocol >= CHACHA_PROTOCOL) return REPLICATION_PROTOCOL;
  return syncProtocol >= ITEM_CODES_PROTOCOL ? RELEASE_PROTOCOL : MIN_REPLICATION_PROTOCOL;
}

/** Largest image a replica or a recovering server stages in memory. */
export const MAX_IMAGE_BYTES = 512 * 1024 * 1024;

/** The replica's note of its last completed run (stored beside the image, atomically with it). */
export interface ReplicatedRecord {
  at: number;
  seq: number;
  entries: number;
  groupId: string;
  counts: ImageCounts;
  /** The server that pushed it. */
  source: { deviceId: string; name: string };
}

/** Which group a replica serves as target (kept in its local store; cleared by a role change). */
export interface ReplicaRelation {
  groupId: string;
  groupKey: string;
  since: number;
}

/** What a finished push or pull moved. */
export interface TransferResult {
  at: number;
  seq: number;
  entries: number;
  /** Buckets sent, of all the image's buckets. */
  buckets: number;
  totalBuckets: number;
  /** Bytes on the wire, both directions. */
  bytes: number;
  replicaKey: Uint8Array;
  replicaId: string;
}

// ---- an inbox: the protocol is a dialogue, so each side awaits the next message ----------------------

class Inbox {
  #queue: { m: Message; raw: Uint8Array }[] = [];
  #waiter: (() => void) | undefined;
  #closed: MfpError | undefined;

  push(m: Message, raw: Uint8Array): void {
    this.#queue.push({ m, raw });
    this.#waiter?.();
  }

  close(reason: MfpError): void {
    this.#closed ??= reason;
    this.#waiter?.();
  }

  /** The next message; a `refuse` becomes its coded error, a closed connection PEER_GONE (or why). */
  async next(): Promise<{ m: Message; raw: Uint8Array }> {
    for (;;) {
      const first = this.#queue.shift();
      if (first) {
        if (first.m.type === SessionType.Refuse) throw new MfpError(first.m.code, first.m.message);
        return first;
      }
      if (this.#closed) throw this.#closed;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
      this.#waiter = undefined;
    }
  }

  async expect<T extends Message['type']>(type: T): Promise<Extract<Message, { type: T }>> {
    const { m } = await this.next();
    if (m.type !== type) throw new MfpError('MESSAGE_UNEXPECTED', `expected ${type}, got ${m.type}`);
    return m as Extract<Message, { type: T }>;
  }
}

function wire(ws: WebSocket, inbox: Inbox, extra: { expectsWelcome?: boolean } = {}): Connection {
  return new Connection(ws, {
    onMessage: (m, raw) => inbox.push(m, raw),
    onClose: (reason) => inbox.close(reason ?? new MfpError('PEER_GONE', 'the peer closed the connection')),
    ...extra,
  });
}

/** Sends an image's entries (those `wanted`) in frames of about CHUNK_BYTES, minding back-pressure. */
async function sendEntries(conn: Connection, source: EntrySource, wanted?: (bucket: string) => boolean): Promise<void> {
  let part: [string, Uint8Array][] = [];
  let size = 0;
  const flush = async () => {
    if (part.length === 0) return;
    if (!conn.send({ type: ReplicationType.Data, entries: part })) throw new MfpError('PEER_GONE', 'the connection closed during the transfer');
    part = [];
    size = 0;
    await conn.drained();
  };
  for await (const [k, v] of imageEntries(source, wanted)) {
    if (size + k.length + v.length + 16 > CHUNK_BYTES && part.length > 0) await flush();
    part.push([k, v]);
    size += k.length + v.length + 16;
  }
  await flush();
}

/** Reads one record from a snapshot. */
async function readFrom<T>(snap: EntrySource, key: string): Promise<T | undefined> {
  for await (const [k, v] of snap.entries({ gte: key, lte: key })) return decodeRecord<T>(v, k);
  return undefined;
}

/** Counts of an image: users, user groups and machines, by their key tags. */
export async function countImage(source: EntrySource): Promise<ImageCounts> {
  let users = 0;
  let devices = 0;
  const groups = new Set<string>();
  for await (const [k] of source.entries({ gt: 'D\x00', lt: 'D\x01' })) if (k) devices++;
  for await (const [k] of source.entries({ gt: 'U\x00', lt: 'U\x01' })) if (k) users++;
  for await (const [k] of source.entries(Keys.allItems())) {
    const entity = Keys.split(k)[1]!;
    if (entity.startsWith('g:')) groups.add(entity);
  }
  return { users, groups: groups.size, devices };
}

// ---- the replica's listener --------------------------------------------------------------------------

/** Options of a replica's listener. */
export interface ReplicaServerOptions extends ListeningRoleOptions {
  /** The mirrored image (the group store's folder, opened raw). */
  kv: KvStore;
  /** The relation to the group it replicates (the agent's local store). */
  local: Store;
  /** A run completed: the image was installed. */
  onInstalled?: (rec: ReplicatedRecord) => void;
  /** The replication protocol it speaks (default REPLICATION_PROTOCOL; 1 has no `release`). */
  protocol?: number;
}

/** The replication target's side. */
export class ReplicaServer {
  readonly #o: ReplicaServerOptions;
  #listener: Listener | undefined;
  /** One transfer at a time: the image must not change while a push computes against it. */
  #busy = false;
  #conns = new Set<Connection>();

  constructor(options: ReplicaServerOptions) {
    this.#o = options;
  }

  get port(): number {
    return this.#listener?.port ?? this.#o.port;
  }

  /** Whether a transfer is under way. */
  get busy(): boolean {
    return this.#busy;
  }

  async start(): Promise<void> {
    this.#listener = await listen({
      host: this.#o.host,
      port: this.#o.port,
      ...(this.#o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#o.handshakeTimeoutMs } : {}),
      log: this.#o.log,
      onConnection: (ws, req, place) => void this.#accept(ws, req, place),
    });
  }

  async stop(): Promise<void> {
    for (const c of this.#conns) c.close();
    const l = this.#listener;
    this.#listener = undefined;
    await l?.close();
  }

  /** The relation to a server's group, if one pushed here. */
  relation(): Promise<ReplicaRelation | undefined> {
    return this.#o.local.getMeta<ReplicaRelation>('replicaOf');
  }

  /** The last completed run. */
  async last(): Promise<ReplicatedRecord | undefined> {
    const bytes = await this.#o.kv.get(REPLICATED_KEY);
    return bytes ? decodeRecord<ReplicatedRecord>(bytes, REPLICATED_KEY) : undefined;
  }

  /** A WebSocket the listener let in: its handshake counts there (per source and in total) until the welcome. */
  async #accept(ws: WebSocket, req: IncomingMessage, place: Place): Promise<void> {
    const address = place.source;
    const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    const inbox = new Inbox();
    const conn = wire(ws, inbox);
    this.#conns.add(conn);
    let handshaking = true;
    const timeout = this.#o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    const deadline = this.#o.clock.setTimeout(() => {
      if (handshaking) conn.refuse('HANDSHAKE_TIMEOUT', `no hello within ${timeout} ms`);
    }, timeout);
    let holding = false;
    try {
      const nonce = randomBytes(32);
      const ephemeral = ephemeralKeyPair();
      const relation = await this.relation();
      const challenge: ReplChallengeMessage = {
        type: ReplicationType.Challenge,
        protocol: this.#o.protocol ?? REPLICATION_PROTOCOL,
        minProtocol: MIN_REPLICATION_PROTOCOL,
        replicaId: this.#o.identity.deviceId,
        replicaKey: this.#o.identity.publicKey,
        groupId: relation?.groupId ?? '',
        nonce,
        salt: Buffer.from(this.#o.admin.salt, 'base64'),
        ephemeral: ephemeral.publicKey,
        settings: this.#o.settings,
        software: this.#o.software,
      };
      const challengeBytes = encodeMessage(challenge);
      conn.sendBytes(challengeBytes);
      const first = await inbox.next();
      if (first.m.type === SessionType.Hello) throw new MfpError('NOT_A_SERVER', 'this machine is a replication target, not a server');
      if (first.m.type !== ReplicationType.Hello) throw new MfpError('MESSAGE_UNEXPECTED', `expected repl-hello, got ${first.m.type}`);
      const helloBytes = first.m.body;
      const hello = readReplHelloBody(decodeValue(helloBytes));
      if (deviceIdOf(hello.publicKey) !== hello.deviceId) throw new MfpError('AUTH_INCORRECT', 'the hello names a device id that is not its key\'s');
      if (hello.protocol < MIN_REPLICATION_PROTOCOL) throw destUnsupported('old-version', `the peer speaks replication ${hello.protocol}; this target needs ${MIN_REPLICATION_PROTOCOL}`);
      if (hello.purpose === 'release' && (this.#o.protocol ?? REPLICATION_PROTOCOL) < RELEASE_PROTOCOL) throw new MfpError('MESSAGE_INVALID', `release is not in replication ${this.#o.protocol}`);
      if (this.#o.settings.departmentIds) throw destUnsupported('department-ids', 'this machine has Department ID management enabled: it cannot be a replication target');
      if (this.#busy) throw new MfpError('REPLICATION_RUNNING', 'another transfer is under way on this replica; retry when it ends');
      this.#busy = true;
      holding = true;
      const attempt = (admission: { user: string; proof: Uint8Array }) =>
        this.#o.limiter.admit({ admin: this.#o.admin, address, remote, deviceId: hello.deviceId, admission, nonce });
      let current: ImageDigest | undefined;
      if (hello.purpose === 'release') {
        const { groupId, groupKey } = hello;
        if (!groupId || !groupKey || deviceIdOf(groupKey) !== groupId) throw new MfpError('MESSAGE_INVALID', 'a release names its group and the group\'s key');
        if (!verifyParts(groupKey, first.m.sig, challengeBytes, helloBytes)) throw new MfpError('AUTH_INCORRECT', 'the release is not signed by the key of the group it names');
        // Only the server of the group it serves frees it; a release for no relation or another group changes nothing.
        if (relation && (relation.groupId !== groupId || relation.groupKey !== Buffer.from(groupKey).toString('base64'))) {
          throw destUnsupported('paired', `this machine is the replication target of group ${relation.groupId}, not of ${groupId}`);
        }
      } else if (hello.purpose === 'push') {
        const { groupId, groupKey } = hello;
        if (!groupId || !groupKey || deviceIdOf(groupKey) !== groupId) throw new MfpError('MESSAGE_INVALID', 'a push names its group and the group\'s key');
        if (!verifyParts(groupKey, first.m.sig, challengeBytes, helloBytes)) throw new MfpError('AUTH_INCORRECT', 'the push is not signed by the key of the group it names');
        if (relation && relation.groupId !== groupId) {
          throw destUnsupported('paired', `this machine is already the replication target of another server (group ${relation.groupId}): stop replication on that server, or start this machine as a server and stop it again`);
        }
        if (!relation && !hello.admission) throw new MfpError('AUTH_INCORRECT', 'the first replication to this machine needs its administrator account');
        if (hello.admission) await attempt(hello.admission);
        // A previous install that failed (a full disk) left the handle to be reopened: the digest the
        // install is computed against must be of what the reopened store holds.
        await this.#o.kv.recover();
        current = await ImageDigest.of(this.#o.kv);
      } else {
        if (!verifyParts(hello.publicKey, first.m.sig, challengeBytes, helloBytes)) throw new MfpError('AUTH_INCORRECT', 'the hello is not signed by the device it names');
        if (!hello.admission) throw new MfpError('AUTH_INCORRECT', 'recovering from a replica needs its administrator account');
        await attempt(hello.admission);
      }
      const last = await this.last();
      const welcome: ReplWelcomeBody = {
        protocol: Math.min(hello.protocol, this.#o.protocol ?? REPLICATION_PROTOCOL),
        adminProof: hello.admission ? serverProof(Buffer.from(this.#o.admin.serverKey, 'base64'), nonce, hello.deviceId, this.#o.identity.publicKey) : null,
        last: last ? { at: last.at, seq: last.seq, entries: last.entries, counts: last.counts } : null,
        groupId: last?.groupId ?? relation?.groupId ?? hello.groupId ?? '',
        tags: current ? current.tagList() : [],
      };
      const body = encodeValue(welcome);
      conn.sendBytes(encodeMessage({ type: ReplicationType.Welcome, body, sig: signParts(this.#o.identity.secretKey, challengeBytes, helloBytes, body) }));
      conn.secure(SecureChannel.derive('server', ephemeral, hello.ephemeral, [challengeBytes, helloBytes], replicationCipher(welcome.protocol)), MAX_FRAME_BYTES);
      handshaking = false;
      place.authenticated();
      deadline.cancel();
      if (hello.purpose === 'push') await this.#receivePush(conn, inbox, hello, current!, relation === undefined);
      else if (hello.purpose === 'release') await this.#release(conn, hello, relation);
      else await this.#servePull(conn, inbox, hello, last);
      conn.close();
    } catch (err) {
      const e = err instanceof MfpError ? err : new MfpError('STORE_WRITE_FAILED', (err as Error).message, { cause: err });
      if (e.code !== 'PEER_GONE') this.#o.log.warning(e.code, `replication session from ${remote} ended: ${e.message}`);
      conn.refuse(e.code, e.message);
    } finally {
      deadline.cancel();
      if (holding) this.#busy = false;
      this.#conns.delete(conn);
    }
  }

  /** Receives and installs a push; the first one (`pairing`) pins its group once the image is installed. */
  async #receivePush(conn: Connection, inbox: Inbox, hello: ReplHelloBody, current: ImageDigest, pairing: boolean): Promise<void> {
    const theirs = new Map(hello.tags);
    const buckets = current.bucketsDifferingFrom(theirs);
    for (let i = 0; i < buckets.length || i === 0; i += 4096) {
      conn.send({ type: ReplicationType.State, buckets: buckets.slice(i, i + 4096), final: i + 4096 >= buckets.length });
    }
    const receiver = new ImageReceiver({ maxBytes: MAX_IMAGE_BYTES });
    const commit = await receive(inbox, receiver);
    if (commit.groupId !== hello.groupId) throw new MfpError('MESSAGE_INVALID', 'the commit names another group than the hello');
    const ops = await receiver.installOps(this.#o.kv, current, commit);
    const rec: ReplicatedRecord = {
      at: commit.at,
      seq: commit.seq,
      entries: commit.entries,
      groupId: commit.groupId,
      counts: commit.counts,
      source: { deviceId: hello.deviceId, name: hello.name },
    };
    await this.#o.kv.write([...ops, { type: 'put', key: REPLICATED_KEY, value: encodeRecord(rec) }], { sync: true });
    if (pairing) {
      // Paired only now that the first copy is whole: a cut first push leaves this machine unpaired.
      await this.#o.local.setMeta({ replicaOf: { groupId: hello.groupId!, groupKey: Buffer.from(hello.groupKey!).toString('base64'), since: this.#o.clock.now() } satisfies ReplicaRelation });
      this.#o.log.info('REPLICA_PAIRED', `replication target of group ${hello.groupId} (server ${hello.name}, ${hello.deviceId})`);
    }
    conn.send({ type: ReplicationType.Done, entries: commit.entries });
    this.#o.log.info('REPLICATED', `image of group ${commit.groupId} at seq ${commit.seq} installed: ${commit.buckets.length} bucket(s), ${receiver.bytes} bytes received`);
    this.#o.onInstalled?.(rec);
  }

  /** `replication stop` on the paired server: this machine no longer serves its group as target; the copy stays (for a recovery). */
  async #release(conn: Connection, hello: ReplHelloBody, relation: ReplicaRelation | undefined): Promise<void> {
    if (relation) {
      await this.#o.local.setMeta({ replicaOf: undefined });
      this.#o.log.info('REPLICA_RELEASED', `no longer the replication target of group ${relation.groupId}: server ${hello.name} (${hello.deviceId}) stopped replication; the last copy stays until another server replicates here`);
    }
    conn.send({ type: ReplicationType.Done, entries: 0 });
  }

  async #servePull(conn: Connection, inbox: Inbox, hello: ReplHelloBody, last: ReplicatedRecord | undefined): Promise<void> {
    await inbox.expect(ReplicationType.Pull);
    if (!last) throw new MfpError('NOT_FOUND', 'this replica holds no copy yet');
    const snap = this.#o.kv.snapshot();
    try {
      const digest = await ImageDigest.of(snap);
      await sendEntries(conn, snap);
      conn.send({
        type: ReplicationType.Commit,
        buckets: [...digest.buckets.keys()],
        total: digest.total,
        entries: digest.entries,
        at: last.at,
        seq: last.seq,
        groupId: last.groupId,
        counts: last.counts,
      });
    } finally {
      await snap.close();
    }
    await inbox.expect(ReplicationType.Done);
    this.#o.log.info('RECOVERED_FROM', `${hello.name} (${hello.deviceId}) loaded this replica's image of group ${last.groupId}`);
  }
}

/** Stages `repl-data` until `repl-commit`. */
async function receive(inbox: Inbox, receiver: ImageReceiver): Promise<ReplCommitMessage> {
  for (;;) {
    const { m } = await inbox.next();
    if (m.type === ReplicationType.Data) receiver.add(m.entries);
    else if (m.type === ReplicationType.Commit) return m;
    else throw new MfpError('MESSAGE_UNEXPECTED', `expected repl-data or repl-commit, got ${m.type}`);
  }
}

// ---- the connecting side ---------------------------------------------------------------------------

/** Who connects to a replica, and how it proves itself. */
export interface PeerOptions {
  address: ServerAddress;
  identity: Identity;
  name: string;
  software: string;
  /** The replica's administrator account (first push, every pull). */
  admission?: { user: string; password: string };
  /** The replica key paired at the first push (base64); a push without admission requires it. */
  pinnedReplicaKey?: string;
  timeoutMs?: number;
}

interface OpenSession {
  conn: Connection;
  inbox: Inbox;
  challenge: ReplChallengeMessage;
  welcome: ReplWelcomeBody;
}

/** Connects, checks the challenge, sends the hello `make` builds, and checks the welcome. */
async function openSession(o: PeerOptions, needs: number, make: (challenge: ReplChallengeMessage, ephemeral: Uint8Array) => { body: ReplHelloBody; signer: Uint8Array }): Promise<OpenSession> {
  const url = `ws://${o.address.host.includes(':') ? `[${o.address.host}]` : o.address.host}:${o.address.port}/`;
  const where = `${o.address.host}:${o.address.port}`;
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES, handshakeTimeout: o.timeoutMs ?? HANDSHAKE_TIMEOUT_MS });
  let opened = false;
  ws.once('open', () => (opened = true));
  const inbox = new Inbox();
  const conn = wire(ws, inbox, { expectsWelcome: true });
  const timer = setTimeout(() => conn.terminate(new MfpError('HANDSHAKE_TIMEOUT', `${where} did not complete the handshake in time`)), o.timeoutMs ?? HANDSHAKE_TIMEOUT_MS);
  try {
    let first: { m: Message; raw: Uint8Array };
    try {
      first = await inbox.next();
    } catch (err) {
      if (!opened) throw new MfpError('ADDRESS_INCORRECT', `cannot reach the replication target at ${where}`, { cause: err });
      throw err;
    }
    if (first.m.type === SessionType.Challenge) throw destUnsupported('server', `${where} is a server, not a replication target (set its role to replica)`);
    if (first.m.type !== ReplicationType.Challenge) throw new MfpError('MESSAGE_UNEXPECTED', `expected repl-challenge, got ${first.m.type}`);
    const challenge = first.m;
    const challengeBytes = first.raw;
    if (challenge.protocol < needs) throw destUnsupported('old-version', `${where} runs an older version (replication ${challenge.protocol}; this server needs ${needs})`);
    if (challenge.settings.departmentIds) throw destUnsupported('department-ids', `${where} has Department ID management enabled`);
    if (deviceIdOf(challenge.replicaKey) !== challenge.replicaId) throw new MfpError('AUTH_INCORRECT', 'the target names a device id that is not its key\'s');
    if (!o.admission) {
      if (!o.pinnedReplicaKey) throw new MfpError('USAGE', 'the first connection to a replica needs its administrator account: --user ID --password PW');
      if (Buffer.from(challenge.replicaKey).toString('base64') !== o.pinnedReplicaKey) {
        throw new MfpError('AUTH_INCORRECT', `${where} presents another identity than the replication target paired before: if it was replaced, run \`replication start\` again with its administrator account`);
      }
    }
    const ephemeral = ephemeralKeyPair();
    const { body, signer } = make(challenge, ephemeral.publicKey);
    let serverKey: Uint8Array | undefined;
    if (o.admission) {
      const p = admissionProof(o.admission.password, challenge.salt, challenge.nonce, o.identity.deviceId);
      body.admission = { user: o.admission.user, proof: p.proof };
      serverKey = p.serverKey;
    }
    const helloBytes = encodeValue(body);
    conn.sendBytes(encodeMessage({ type: ReplicationType.Hello, body: helloBytes, sig: signParts(signer, challengeBytes, helloBytes) }));
    const w = await inbox.expect(ReplicationType.Welcome);
    if (!verifyParts(challenge.replicaKey, w.sig, challengeBytes, helloBytes, w.body)) {
      throw new MfpError('FRAME_TAMPERED', 'the target\'s welcome does not cover what was sent and received: the exchange was altered');
    }
    const welcome = readReplWelcomeBody(decodeValue(w.body));
    if (serverKey && !(welcome.adminProof && checkServerProof(serverKey, welcome.adminProof, challenge.nonce, o.identity.deviceId, challenge.replicaKey))) {
      throw new MfpError('AUTH_INCORRECT', 'the target could not prove it holds the administrator account given: it is not the machine it claims to be');
    }
    conn.secure(SecureChannel.derive('client', ephemeral, challenge.ephemeral, [challengeBytes, helloBytes], replicationCipher(welcome.protocol)), MAX_FRAME_BYTES);
    return { conn, inbox, challenge, welcome };
  } catch (err) {
    if (!conn.closed) conn.terminate();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function helloFor(o: PeerOptions, purpose: 'push' | 'pull' | 'release', ephemeral: Uint8Array, group?: { groupId: string; groupKey: Uint8Array }, tags: DigestEntry[] = []): ReplHelloBody {
  return {
    protocol: REPLICATION_PROTOCOL,
    purpose,
    deviceId: o.identity.deviceId,
    publicKey: o.identity.publicKey,
    name: o.name,
    software: o.software,
    groupId: group?.groupId ?? null,
    groupKey: group?.groupKey ?? null,
    admission: null,
    ephemeral,
    tags,
  };
}

/** What a push needs of the server. */
export interface PushOptions extends PeerOptions {
  /** The group store's backend: the image is read from one snapshot of it. */
  kv: KvStore;
  groupId: string;
  groupKey: Identity;
  now: () => number;
}

/**
 * One replication run: pushes the server's image to the replica, sending only the buckets that differ.
 * Resolves when the replica has installed it; on any failure the replica keeps its previous image.
 */
export async function pushImage(o: PushOptions): Promise<TransferResult> {
  const snap: KvSnapshot = o.kv.snapshot();
  let session: OpenSession | undefined;
  try {
    const at = o.now();
    const digest = await ImageDigest.of(snap);
    const seq = (await readFrom<number>(snap, Keys.meta('seq'))) ?? 0;
    const counts = await countImage(snap);
    session = await openSession(o, RELEASE_PROTOCOL, (_challenge, ephemeral) => ({
      body: helloFor(o, 'push', ephemeral, { groupId: o.groupId, groupKey: o.groupKey.publicKey }, digest.tagList()),
      signer: o.groupKey.secretKey,
    }));
    const { conn, inbox, challenge, welcome } = session;
    const targetBuckets = new Map<string, Uint8Array>();
    for (;;) {
      const state = await inbox.expect(ReplicationType.State);
      for (const [b, d] of state.buckets) targetBuckets.set(b, d);
      if (state.final) break;
    }
    const send = bucketsToSend(digest, new Map(welcome.tags), targetBuckets);
    await sendEntries(conn, snap, (b) => send.has(b));
    conn.send({ type: ReplicationType.Commit, buckets: [...send], total: digest.total, entries: digest.entries, at, seq, groupId: o.groupId, counts });
    const done = await inbox.expect(ReplicationType.Done);
    if (done.entries !== digest.entries) throw new MfpError('MESSAGE_INVALID', `the replica reports ${done.entries} entries installed, not ${digest.entries}`);
    conn.close();
    return {
      at,
      seq,
      entries: digest.entries,
      buckets: send.size,
      totalBuckets: digest.buckets.size,
      bytes: conn.bytes.sent + conn.bytes.received,
      replicaKey: challenge.replicaKey,
      replicaId: challenge.replicaId,
    };
  } finally {
    if (session && !session.conn.closed) session.conn.terminate();
    await snap.close();
  }
}

/**
 * `replication stop`: tells the paired replica it is no longer this group's target, so another server
 * can pair with it. Authenticated as a push is (the pinned replica key, a hello signed by the group
 * key); the replica keeps its last copy.
 */
export async function releaseReplica(o: Omit<PushOptions, 'kv' | 'now'>): Promise<void> {
  const session = await openSession(o, RELEASE_PROTOCOL, (_challenge, ephemeral) => ({
    body: helloFor(o, 'release', ephemeral, { groupId: o.groupId, groupKey: o.groupKey.publicKey }),
    signer: o.groupKey.secretKey,
  }));
  try {
    await session.inbox.expect(ReplicationType.Done);
    session.conn.close();
  } finally {
    if (!session.conn.closed) session.conn.terminate();
  }
}

/** What a replica offers, shown before a recovery is confirmed. */
export interface ReplicaInfo {
  replicaId: string;
  groupId: string;
  at: number;
  seq: number;
  entries: number;
  counts: ImageCounts;
}

/** A pulled image, verified against the replica's digest, ready to install. */
export interface PulledImage {
  info: ReplicaInfo;
  entries: [string, Uint8Array][];
  bytes: number;
}

/**
 * Recovery's transfer: connects to a replica with its administrator account, shows what it holds
 * (`confirm` decides), and pulls the whole image. Nothing is installed here.
 */
export async function pullImage(o: PeerOptions & { confirm: (info: ReplicaInfo) => boolean | Promise<boolean> }): Promise<PulledImage | { info: ReplicaInfo; declined: true }> {
  if (!o.admission) throw new MfpError('USAGE', 'recover needs the replica\'s administrator account: --user ID --password PW');
  const session = await openSession(o, MIN_REPLICATION_PROTOCOL, (_challenge, ephemeral) => ({ body: helloFor(o, 'pull', ephemeral), signer: o.identity.secretKey }));
  const { conn, inbox, challenge, welcome } = session;
  try {
    if (!welcome.last) throw new MfpError('NOT_FOUND', `the replica at ${o.address.host}:${o.address.port} holds no copy yet`);
    const info: ReplicaInfo = { replicaId: challenge.replicaId, groupId: welcome.groupId, ...welcome.last };
    if (!(await o.confirm(info))) return { info, declined: true };
    conn.send({ type: ReplicationType.Pull });
    const receiver = new ImageReceiver({ maxBytes: MAX_IMAGE_BYTES });
    const m = await receive(inbox, receiver);
    const entries = receiver.entries();
    const digest = new ImageDigest();
    for (const [k, v] of entries) digest.add(k, v);
    if (!sameDigest(digest.total, m.total) || digest.entries !== m.entries) {
      throw new MfpError('MESSAGE_INVALID', 'the pulled image does not match the replica\'s digest: nothing was installed');
    }
    conn.send({ type: ReplicationType.Done, entries: digest.entries });
    conn.close();
    return { info: { ...info, at: m.at, seq: m.seq, entries: m.entries, counts: m.counts }, entries, bytes: conn.bytes.sent + conn.bytes.received };
  } finally {
    if (!conn.closed) conn.terminate();
  }
}
