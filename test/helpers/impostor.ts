/**
 * A permissive impostor server for the adversarial suite (test/attacks/), written from the protocol modules alone: it
 * answers any hello with a welcome signed by its own group key (or by a key it claims for another
 * group's id), admits everyone without a password, asks for every entity offered, accepts uploads and
 * changes, and pushes a delta of its own. It records what reached it, so a test can assert that
 * nothing did.
 */
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { Connection } from '../../agent/connection.js';
import { createIdentity, signParts, type Identity } from '../../agent/identity.js';
import { decodeValue, encodeMessage, encodeValue } from '../../protocol/codec.js';
import { HeartbeatType } from '../../protocol/heartbeat.js';
import { MAX_FRAME_BYTES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { ephemeralKeyPair, SecureChannel, sessionCipher } from '../../protocol/secure.js';
import { readHelloBody, SessionType, type ChallengeMessage, type HelloBody, type WelcomeBody } from '../../protocol/session.js';
import { AckStatus, SyncType, type UploadEntity } from '../../protocol/sync.js';

/** What an impostor saw. */
export interface ImpostorLog {
  hellos: HelloBody[];
  uploads: UploadEntity[];
  changes: unknown[];
  /** Deltas it pushed to a client that went live. */
  pushed: number;
}

/** Options of an impostor. */
export interface ImpostorOptions {
  /** The key it signs with (default: a fresh one, its own group). */
  groupKey?: Identity;
  /** The group id it names (default: its key's, as a real group's); another group's id makes it lie. */
  groupId?: string;
  /** The delta it pushes once a client is live: [user, item, value]. */
  delta?: [string, string, unknown];
  /** Where it listens (default 127.0.0.1, a free port). */
  host?: string;
  port?: number;
  /** Called with each hello that reaches it. */
  onHello?: (hello: HelloBody) => void;
}

/** A permissive impostor server on 127.0.0.1. */
export class Impostor {
  readonly log: ImpostorLog = { hellos: [], uploads: [], changes: [], pushed: 0 };
  readonly #wss: WebSocketServer;
  readonly #key: Identity;
  readonly #groupId: string;
  readonly #delta: [string, string, unknown] | undefined;
  readonly #onHello: ((hello: HelloBody) => void) | undefined;

  private constructor(wss: WebSocketServer, o: ImpostorOptions) {
    this.#wss = wss;
    this.#key = o.groupKey ?? createIdentity();
    this.#groupId = o.groupId ?? this.#key.deviceId;
    this.#delta = o.delta;
    this.#onHello = o.onHello;
    wss.on('connection', (ws) => this.#serve(ws));
  }

  /** Starts listening (by default on a free port of 127.0.0.1). */
  static async start(o: ImpostorOptions = {}): Promise<Impostor> {
    const wss = new WebSocketServer({ host: o.host ?? '127.0.0.1', port: o.port ?? 0, perMessageDeflate: false });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    return new Impostor(wss, o);
  }

  /** The port it listens on. */
  get port(): number {
    return (this.#wss.address() as { port: number }).port;
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #serve(ws: import('ws').WebSocket): void {
    const ephemeral = ephemeralKeyPair();
    const challenge: ChallengeMessage = {
      type: SessionType.Challenge,
      protocol: PROTOCOL_VERSION,
      minProtocol: MIN_PROTOCOL_VERSION,
      serverId: createIdentity().deviceId,
      groupId: this.#groupId,
      nonce: randomBytes(32),
      salt: randomBytes(16),
      ephemeral: ephemeral.publicKey,
    };
    const challengeBytes = encodeMessage(challenge);
    const conn: Connection = new Connection(ws, {
      onClose: () => undefined,
      onMessage: (m) => {
        switch (m.type) {
          case SessionType.Hello: {
            const hello = readHelloBody(decodeValue(m.body));
            this.log.hellos.push(hello);
            this.#onHello?.(hello);
            const protocol = Math.min(hello.protocol, PROTOCOL_VERSION);
            const welcome: WelcomeBody = {
              protocol,
              capabilities: hello.capabilities,
              groupId: this.#groupId,
              groupKey: this.#key.publicKey,
              epoch: 'impostor',
              seq: 1,
              lastCounter: 0,
              resume: 'join',
              adminProof: null,
              sharing: { version: 0, device: [] },
            };
            const body = encodeValue(welcome);
            conn.sendBytes(encodeMessage({ type: SessionType.Welcome, body, sig: signParts(this.#key.secretKey, challengeBytes, m.body, body) }));
            conn.secure(SecureChannel.derive('server', ephemeral, hello.ephemeral, [challengeBytes, m.body], sessionCipher(protocol)), MAX_FRAME_BYTES, protocol);
            return;
          }
          case SyncType.JoinOffer: {
            const upload = m.entities.map(([e]) => e);
            conn.send({ type: SyncType.JoinPlan, upload, replace: [] });
            if (upload.length === 0) this.#finishJoin(conn);
            return;
          }
          case SyncType.Upload:
            this.log.uploads.push(...m.entities);
            if (m.final) {
              conn.send({ type: SyncType.UploadAck, created: m.entities.map((e) => e.e), skipped: [] });
              this.#finishJoin(conn);
            }
            return;
          case SyncType.Changes:
            this.log.changes.push(...m.list);
            conn.send({ type: SyncType.Ack, list: m.list.map(([c]) => [c, AckStatus.Applied, 2, null]) });
            return;
          case HeartbeatType.Ping:
            conn.send({ type: HeartbeatType.Pong, at: Date.now(), echo: m.at });
            return;
          default:
            return;
        }
      },
    });
    conn.sendBytes(challengeBytes);
  }

  #finishJoin(conn: Connection): void {
    conn.send({ type: SyncType.Snapshot, reason: 'join', items: [], replace: [], deletes: [], versions: [], copies: [], final: true, seq: 1 });
    if (this.#delta) {
      const [user, item, value] = this.#delta;
      conn.send({ type: SyncType.Deltas, list: [[2, `u:${user}`, item, value]], seq: 2 });
      this.log.pushed++;
    }
  }
}
