/**
 * A scripted server that speaks mfpsync's wire protocol from the protocol modules alone: it admits any
 * device that proves the administrator password it was given, resumes it by cursor (no join: the
 * client goes live at once), and then hands every sealed frame to the script, which answers what it
 * wants when it wants — a slow or stalled server, watched from outside the client under test.
 *
 *   const srv = await RawServer.start({ password: 'pw' });
 *   const joined = srv.accept();
 *   await admitLocal(agent, srv.port, 'pw');
 *   const s = await joined;
 *   const m = await s.next(SyncType.Changes);   // the client's first frame of changes
 *   s.send({ type: SyncType.Ack, list: [...] });
 */
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import { admissionProof, createIdentity, serverProof, signParts } from '../../agent/identity.js';
import { decodeMessage, decodeValue, encodeMessage, encodeValue, type Message, type MessageType } from '../../protocol/codec.js';
import { MAX_FRAME_BYTES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { ephemeralKeyPair, SecureChannel, sessionCipher } from '../../protocol/secure.js';
import { readHelloBody, SessionType, type WelcomeBody } from '../../protocol/session.js';
import { ITEM_CODES_PROTOCOL } from '../../protocol/sync.js';
import { capabilitiesFor } from '../../storage/catalog.js';

/** One admitted client's session, live from the welcome on. */
export class RawSession {
  readonly #ws: WebSocket;
  readonly #channel: SecureChannel;
  readonly #itemCodes: boolean;
  readonly #inbox: Message[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;

  constructor(ws: WebSocket, channel: SecureChannel, itemCodes: boolean) {
    this.#ws = ws;
    this.#channel = channel;
    this.#itemCodes = itemCodes;
    ws.on('message', (data: Buffer) => {
      this.#inbox.push(decodeMessage(channel.open(data), MAX_FRAME_BYTES, itemCodes));
      this.#waiter?.();
    });
    ws.on('close', () => {
      this.#closed = true;
      this.#waiter?.();
    });
  }

  /** Sends one message, sealed. */
  send(m: Message): void {
    this.#ws.send(this.#channel.seal(encodeMessage(m, this.#itemCodes)));
  }

  /**
   * The next message the client sent (of `type`: those of other types before it are dropped).
   * Rejects if the session closes first.
   */
  async next<T extends MessageType>(type?: T): Promise<Extract<Message, { type: T }>> {
    for (;;) {
      const i = this.#inbox.findIndex((m) => type === undefined || m.type === type);
      if (i >= 0) return this.#inbox.splice(0, i + 1).at(-1) as Extract<Message, { type: T }>;
      if (this.#closed) throw new Error(`the session closed before a ${type ?? 'message'}`);
      await new Promise<void>((resolve) => (this.#waiter = resolve));
      this.#waiter = undefined;
    }
  }

  /** Messages received and not taken by `next` yet, in order. */
  get inbox(): readonly Message[] {
    return this.#inbox;
  }
}

/** A scripted server on 127.0.0.1. */
export class RawServer {
  readonly #wss: WebSocketServer;
  readonly #password: string;
  readonly #group = createIdentity();
  readonly #salt = randomBytes(16);
  #accepted: ((s: RawSession) => void)[] = [];

  private constructor(wss: WebSocketServer, password: string) {
    this.#wss = wss;
    this.#password = password;
    wss.on('connection', (ws) => this.#handshake(ws));
  }

  /** Listens on a free port of 127.0.0.1. */
  static async start(o: { password: string }): Promise<RawServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    return new RawServer(wss, o.password);
  }

  /** The port it listens on. */
  get port(): number {
    const a = this.#wss.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Resolves with the next session admitted. */
  accept(): Promise<RawSession> {
    return new Promise((resolve) => this.#accepted.push(resolve));
  }

  /** Closes every connection and the listener. */
  async close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  /** Challenge, hello, welcome: the server's half of the handshake, with an admission by password. */
  #handshake(ws: WebSocket): void {
    const ephemeral = ephemeralKeyPair();
    const nonce = randomBytes(32);
    const challenge = encodeMessage({
      type: SessionType.Challenge,
      protocol: PROTOCOL_VERSION,
      minProtocol: MIN_PROTOCOL_VERSION,
      serverId: this.#group.deviceId,
      groupId: this.#group.deviceId,
      nonce,
      salt: this.#salt,
      ephemeral: ephemeral.publicKey,
    });
    ws.once('message', (data: Buffer) => {
      const m = decodeMessage(data);
      if (m.type !== SessionType.Hello) throw new Error(`expected a hello, got ${m.type}`);
      const hello = readHelloBody(decodeValue(m.body));
      if (!hello.admission) throw new Error('the raw server admits with the administrator password only');
      const { proof, serverKey } = admissionProof(this.#password, this.#salt, nonce, hello.deviceId);
      if (!Buffer.from(proof).equals(Buffer.from(hello.admission.proof))) throw new Error('wrong administrator password');
      const protocol = Math.min(hello.protocol, PROTOCOL_VERSION);
      const welcome: WelcomeBody = {
        protocol,
        capabilities: capabilitiesFor(protocol),
        groupId: this.#group.deviceId,
        groupKey: this.#group.publicKey,
        epoch: 'raw',
        seq: 0,
        lastCounter: 0,
        resume: 'cursor',
        adminProof: serverProof(serverKey, nonce, hello.deviceId, this.#group.publicKey),
        sharing: { version: 0, device: [] },
      };
      const body = encodeValue(welcome);
      ws.send(encodeMessage({ type: SessionType.Welcome, body, sig: signParts(this.#group.secretKey, challenge, m.body, body) }));
      const channel = SecureChannel.derive('server', ephemeral, hello.ephemeral, [challenge, m.body], sessionCipher(protocol));
      this.#accepted.shift()?.(new RawSession(ws, channel, protocol >= ITEM_CODES_PROTOCOL));
    });
    ws.send(challenge);
  }
}
