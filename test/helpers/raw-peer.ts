/**
 * A scripted device that speaks mfpsync's wire protocol from the protocol modules alone, the way an
 * outside attacker with the README and the wire format would: a raw WebSocket, the handshake built by
 * hand (hello signed with its own key, an admission proof when given a password), then sealed frames.
 * It is not the agent's client: it sends what the script says, in the order it says, from the source
 * address it is told (loopback has many: 127.0.0.2, 127.0.0.3, …), and can stop at any step.
 *
 *   const p = await RawPeer.open({ port, localAddress: '127.0.0.3' });   // socket up, challenge in
 *   const welcome = await p.hello({ admission: { user: 'admin', password: 'pw' } });
 *   p.send({ type: 'join-offer', entities: [] });
 *   const plan = await p.receive('join-plan');
 *
 * A refusal rejects `hello()` and `receive()` with an MfpError of the refusal's code.
 */
import { WebSocket } from 'ws';
import { admissionProof, createIdentity, signParts, type Identity } from '../../agent/identity.js';
import { decodeMessage, decodeValue, encodeMessage, encodeValue, type Message, type MessageType } from '../../protocol/codec.js';
import { MfpError } from '../../protocol/errors.js';
import { MAX_FRAME_BYTES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { ephemeralKeyPair, SecureChannel, sessionCipher } from '../../protocol/secure.js';
import { readWelcomeBody, SessionType, type ChallengeMessage, type HelloBody, type WelcomeBody } from '../../protocol/session.js';
import { ITEM_CODES_PROTOCOL } from '../../protocol/sync.js';
import { capabilitiesFor } from '../../storage/catalog.js';

/** Where and from where a raw peer connects. */
export interface RawPeerOptions {
  port: number;
  host?: string;
  /** Source address of the socket (e.g. '127.0.0.3'). */
  localAddress?: string;
  /** The device's identity; a fresh one by default (a stranger). */
  identity?: Identity;
  /** How long to wait for the challenge and for each answer. */
  timeoutMs?: number;
}

/** What the hello says; everything has a plausible default. */
export type RawHello = Partial<Omit<HelloBody, 'admission'>> & { admission?: { user: string; password: string } | null };

/** One scripted connection. */
export class RawPeer {
  readonly ws: WebSocket;
  readonly identity: Identity;
  readonly challenge: ChallengeMessage;
  readonly challengeBytes: Uint8Array;
  /** The welcome, once `hello()` resolved. */
  welcome: WelcomeBody | undefined;
  readonly #timeoutMs: number;
  #channel: SecureChannel | undefined;
  #itemCodes = false;
  #inbox: Message[] = [];
  #waiters: { want: MessageType | undefined; resolve: (m: Message) => void; reject: (e: Error) => void }[] = [];
  #closed: MfpError | undefined;
  /** Resolves with the close code when the socket closes. */
  readonly closed: Promise<number>;

  private constructor(ws: WebSocket, identity: Identity, challengeBytes: Buffer, timeoutMs: number) {
    this.ws = ws;
    this.identity = identity;
    this.challengeBytes = challengeBytes;
    this.#timeoutMs = timeoutMs;
    const m = decodeMessage(challengeBytes);
    if (m.type !== SessionType.Challenge) throw new MfpError('MESSAGE_UNEXPECTED', `expected a challenge, got ${m.type}`);
    this.challenge = m;
    ws.on('message', (data: Buffer) => this.#receive(data));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code) => {
        this.#fail(this.#closed ?? new MfpError('PEER_GONE', `the server closed the connection (${code})`));
        resolve(code);
      });
    });
  }

  /** Opens the socket and waits for the server's challenge. Rejects with PEER_GONE if the server drops it first. */
  static open(o: RawPeerOptions): Promise<RawPeer> {
    const timeoutMs = o.timeoutMs ?? 10_000;
    const ws = new WebSocket(`ws://${o.host ?? '127.0.0.1'}:${o.port}/`, {
      perMessageDeflate: false,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new MfpError('HANDSHAKE_TIMEOUT', `no challenge within ${timeoutMs} ms`));
      }, timeoutMs);
      const gone = (why: string) => {
        clearTimeout(timer);
        reject(new MfpError('PEER_GONE', why));
      };
      ws.once('error', (err) => gone(err.message));
      ws.once('close', (code) => gone(`closed before the challenge (${code})`));
      ws.once('message', (data: Buffer) => {
        clearTimeout(timer);
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        ws.on('error', () => undefined);
        try {
          resolve(new RawPeer(ws, o.identity ?? createIdentity(), data, timeoutMs));
        } catch (err) {
          ws.terminate();
          reject(err);
        }
      });
    });
  }

  /** Opens a socket and completes the handshake: `open` then `hello`. */
  static async connect(o: RawPeerOptions & { hello?: RawHello }): Promise<RawPeer> {
    const peer = await RawPeer.open(o);
    await peer.hello(o.hello ?? {});
    return peer;
  }

  /** The hello's bytes as `hello()` would send them (signed body, not yet sent), and what derives the keys. */
  buildHello(h: RawHello = {}): { frame: Uint8Array; body: Uint8Array; ephemeral: ReturnType<typeof ephemeralKeyPair> } {
    const id = this.identity;
    const protocol = h.protocol ?? PROTOCOL_VERSION;
    const ephemeral = ephemeralKeyPair();
    const { admission, ...rest } = h;
    const body: HelloBody = {
      protocol,
      minProtocol: MIN_PROTOCOL_VERSION,
      capabilities: capabilitiesFor(protocol),
      deviceId: id.deviceId,
      publicKey: id.publicKey,
      name: 'raw-peer',
      serial: '',
      location: '',
      software: 'raw-peer',
      groupId: null,
      epoch: null,
      cursor: 0,
      heartbeat: 10,
      sharingVersion: 0,
      settings: { loginService: 'user-authentication', departmentIds: false },
      ephemeral: ephemeral.publicKey,
      ...rest,
      admission: admission
        ? { user: admission.user, proof: admissionProof(admission.password, this.challenge.salt, this.challenge.nonce, id.deviceId).proof }
        : null,
    };
    const bytes = encodeValue(body);
    const frame = encodeMessage({ type: SessionType.Hello, body: bytes, sig: signParts(id.secretKey, this.challengeBytes, bytes) });
    return { frame, body: bytes, ephemeral };
  }

  /**
   * Sends a hello and waits for the answer: resolves with the welcome (the session is sealed from then
   * on), rejects with an MfpError of the refusal's code (or PEER_GONE if the server just closes).
   */
  async hello(h: RawHello = {}): Promise<WelcomeBody> {
    const { frame, body, ephemeral } = this.buildHello(h);
    this.ws.send(frame);
    const m = await this.#next(undefined, true);
    if (m.type !== SessionType.Welcome) throw new MfpError('MESSAGE_UNEXPECTED', `expected a welcome, got ${m.type}`);
    const welcome = readWelcomeBody(decodeValue(m.body));
    const protocol = Math.min(welcome.protocol, h.protocol ?? PROTOCOL_VERSION);
    this.#channel = SecureChannel.derive('client', ephemeral, this.challenge.ephemeral, [this.challengeBytes, body], sessionCipher(protocol));
    this.#itemCodes = protocol >= ITEM_CODES_PROTOCOL;
    this.welcome = welcome;
    // Frames that came sealed behind the welcome were queued as bytes: open them now, in order.
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const data of held) this.#deliver(data);
    return welcome;
  }

  /** Sends one message, sealed once the session is. */
  send(m: Message): void {
    this.sendPlain(encodeMessage(m, this.#itemCodes));
  }

  /** Sends hand-built plaintext bytes (sealed once the session is): for frames the encoder would not make. */
  sendPlain(plain: Uint8Array): void {
    this.ws.send(this.#channel ? this.#channel.seal(plain) : plain);
  }

  /** The next message of `type` (others that arrive before it are kept for later calls), or the next of any type. */
  receive<T extends MessageType>(type?: T): Promise<Extract<Message, { type: T }>> {
    return this.#next(type, false) as Promise<Extract<Message, { type: T }>>;
  }

  /** Drops the socket at once, as a peer that vanishes does. */
  terminate(): void {
    this.ws.terminate();
  }

  /** Closes the socket gracefully. */
  close(): Promise<number> {
    this.ws.close(1000);
    return this.closed;
  }

  /** Frames that came after the welcome, before `hello()` derived the keys to open them. */
  #held: Buffer[] | undefined;

  #receive(data: Buffer): void {
    if (this.#held) this.#held.push(data);
    else this.#deliver(data);
  }

  #deliver(data: Buffer): void {
    let m: Message;
    try {
      const plain = this.#channel ? this.#channel.open(data) : data;
      m = decodeMessage(plain, MAX_FRAME_BYTES, this.#itemCodes);
    } catch (err) {
      this.#fail(err as MfpError);
      this.ws.terminate();
      return;
    }
    // Everything behind a welcome is sealed with keys `hello()` derives from it: hold it until then.
    if (m.type === SessionType.Welcome && !this.#channel) this.#held = [];
    if (m.type === SessionType.Refuse) {
      this.#closed = new MfpError(m.code, m.message);
      this.#fail(this.#closed);
      return;
    }
    const i = this.#waiters.findIndex((w) => w.want === undefined || w.want === m.type);
    if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(m);
    else this.#inbox.push(m);
  }

  #fail(err: MfpError): void {
    this.#closed ??= err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  #next(want: MessageType | undefined, handshake: boolean): Promise<Message> {
    const i = this.#inbox.findIndex((m) => want === undefined || m.type === want);
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0]!);
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const k = this.#waiters.indexOf(waiter);
        if (k >= 0) this.#waiters.splice(k, 1);
        reject(new MfpError(handshake ? 'HANDSHAKE_TIMEOUT' : 'PEER_GONE', `no ${want ?? 'answer'} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      const waiter = {
        want,
        resolve: (m: Message) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }
}
