/**
 * A WebSocket carrying protocol frames: decodes and validates every incoming frame with the codec and
 * hands typed messages to one handler, one at a time, in order. A frame that fails to decode, or a
 * handler that throws a coded error, ends the session with a `refuse` naming the code.
 *
 * Until the handshake completes, frames travel in clear and ws refuses any over the handshake limit
 * before buffering it; afterwards every frame is sealed (protocol/secure.ts) and the limit is raised.
 *
 * Frames are opened as they arrive, but the session keys are set by the welcome's handler, which runs
 * later (handlers are chained). The server may send its first sealed frame right behind the welcome —
 * a resume with changes waiting — and ws may deliver both in one tick: so once a welcome has arrived,
 * later frames wait, unopened, until the keys are set.
 */
import type { WebSocket } from 'ws';
import { decodeMessage, encodeMessage, type Message } from '../protocol/codec.js';
import { MfpError, toMfpError, type ErrorCode } from '../protocol/errors.js';
import { MAX_FRAME_BYTES, MAX_HANDSHAKE_FRAME_BYTES, MAX_MESSAGE_TEXT_BYTES, MAX_PENDING_BYTES, MAX_SEND_BUFFER_BYTES } from '../protocol/limits.js';
import type { SecureChannel } from '../protocol/secure.js';
import { ReplicationType } from '../protocol/replication.js';
import { SessionType } from '../protocol/session.js';
import { ITEM_CODES_PROTOCOL } from '../protocol/sync.js';
import { clipText } from '../protocol/validate.js';

/** Options of a connection. */
export interface ConnectionOptions {
  onMessage: (message: Message, raw: Uint8Array) => Promise<void> | void;
  onClose: (reason: MfpError | undefined) => void;
  /** The client's end: a welcome arrives, and the frames behind it are sealed. */
  expectsWelcome?: boolean;
  /**
   * Messages handled as they arrive, ahead of the handlers still running or queued: a heartbeat must be
   * answered while an earlier frame waits (a join queued behind another client's), or both ends would
   * take the peer for gone after 3 silent heartbeats.
   */
  outOfOrder?: (message: Message) => boolean;
  /**
   * A bound on what may wait for the handlers, in units `units` counts per message (the server: the
   * changes of a `changes` frame): beyond `max` the socket is paused, as it is beyond
   * MAX_PENDING_BYTES of frames waiting.
   */
  pending?: { max: number; units: (message: Message) => number };
}

/** ws's own protocol errors, by their codes, as ours. */
function wsError(err: Error & { code?: string }): MfpError {
  if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return new MfpError('FRAME_TOO_LARGE', err.message, { cause: err });
  if (err.code?.startsWith('WS_ERR_')) return new MfpError('FRAME_MALFORMED', err.message, { cause: err });
  return new MfpError('PEER_GONE', err.message, { cause: err });
}

/**
 * Sets the largest message ws accepts on this socket, checked from the frame header before the
 * payload is buffered. ws has no public setter; its receiver's field is used and a test pins it.
 */
export function setMaxPayload(ws: WebSocket, bytes: number): boolean {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}

/** A protocol connection over one WebSocket. */
export class Connection {
  readonly #ws: WebSocket;
  readonly #options: ConnectionOptions;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  #closeReason: MfpError | undefined;
  #drainWaiters: (() => void)[] = [];
  #secure: SecureChannel | undefined;
  #maxFrame = MAX_HANDSHAKE_FRAME_BYTES;
  /** The session was negotiated at protocol 3 or later: `changes`/`deltas` name items by code. */
  #itemCodes = false;
  /** Frames that arrived after a welcome, before its handler set the session keys. */
  #held: Buffer[] | undefined;
  /** Received and not handled yet (queued or running): bytes of frames, and units of `options.pending`. */
  readonly #pending = { bytes: 0, units: 0 };
  /** Bytes sent and received, for the benchmark's wire figures. */
  readonly bytes = { sent: 0, received: 0 };

  constructor(ws: WebSocket, options: ConnectionOptions) {
    this.#ws = ws;
    this.#options = options;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#receive(data, isBinary));
    ws.on('close', (code: number) => {
      // 1009: the peer's ws refused a frame of ours over its size limit, before reading it.
      if (code === 1009) this.#closeReason ??= new MfpError('FRAME_TOO_LARGE', 'the peer refused a frame over its size limit (close 1009)');
      this.#finish();
    });
    ws.on('error', (err) => {
      this.#closeReason ??= wsError(err);
      // ws ends the socket after an error and says 'close' later, once the peer has answered: the session
      // is over now, and its end (a refusal's log line) must not wait on the peer.
      this.#finish();
    });
    setMaxPayload(ws, this.#maxFrame);
    ws.once('open', () => setMaxPayload(ws, this.#maxFrame));
  }

  /**
   * From now on every frame is sealed and opened with `channel`, and frames up to `maxFrameBytes` pass;
   * `protocol` is the negotiated version (from ITEM_CODES_PROTOCOL, items travel by code).
   */
  secure(channel: SecureChannel, maxFrameBytes: number, protocol = 0): void {
    this.#secure = channel;
    this.#itemCodes = protocol >= ITEM_CODES_PROTOCOL;
    this.#maxFrame = maxFrameBytes;
    setMaxPayload(this.#ws, maxFrameBytes);
    const held = this.#held;
    this.#held = undefined;
    for (const data of held ?? []) this.#open(data, true);
  }

  /** Whether frames are sealed. */
  get isSecure(): boolean {
    return this.#secure !== undefined;
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one message; false if the connection is closed. */
  send(message: Message): boolean {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return false;
    const plain = encodeMessage(message, this.#itemCodes);
    const bytes = this.#secure ? this.#secure.seal(plain) : plain;
    this.bytes.sent += bytes.length;
    this.#ws.send(bytes, { binary: true }, () => this.#checkDrain());
    return true;
  }

  /** Sends pre-encoded handshake bytes, in clear (only before the session is secured). */
  sendBytes(bytes: Uint8Array): boolean {
    if (this.#secure) throw new TypeError('handshake bytes after the session is secured');
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return false;
    this.bytes.sent += bytes.length;
    this.#ws.send(bytes, { binary: true }, () => this.#checkDrain());
    return true;
  }

  /** Resolves when the socket's send buffer is below MAX_SEND_BUFFER_BYTES. */
  async drained(): Promise<void> {
    if (this.#ws.bufferedAmount < MAX_SEND_BUFFER_BYTES || this.#closed) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  #checkDrain(): void {
    if (this.#ws.bufferedAmount >= MAX_SEND_BUFFER_BYTES && !this.#closed) return;
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  /**
   * Counts a frame in (`sign` 1) or out (-1, handled) of what waits for the handlers, and pauses or
   * resumes reading the socket by the bounds: TCP then holds what the peer sends beyond them.
   */
  #count(sign: 1 | -1, bytes: number, units: number): void {
    const p = this.#pending;
    p.bytes += sign * bytes;
    p.units += sign * units;
    const over = p.bytes > MAX_PENDING_BYTES || p.units > (this.#options.pending?.max ?? Infinity);
    if (over && !this.#ws.isPaused) this.#ws.pause();
    else if (!over && this.#ws.isPaused) this.#ws.resume();
  }

  /** Sends a refusal with a code, then closes. */
  refuse(code: ErrorCode, message: string): void {
    this.#closeReason ??= new MfpError(code, message);
    // The message may quote what the peer sent: cut to what its reader accepts, or it could not read why.
    this.send({ type: SessionType.Refuse, code, message: clipText(message, MAX_MESSAGE_TEXT_BYTES) });
    this.close();
  }

  /** Closes the connection (gracefully, then forcibly if the peer does not answer). */
  close(): void {
    if (this.#closed) return;
    try {
      this.#ws.close(1000);
    } catch {
      this.#ws.terminate();
    }
    const t = setTimeout(() => this.#ws.terminate(), 2000);
    t.unref();
    this.#finish();
  }

  /** Drops the connection at once (a dead peer). */
  terminate(reason?: MfpError): void {
    this.#closeReason ??= reason;
    this.#ws.terminate();
    this.#finish();
  }

  #receive(data: Buffer, isBinary: boolean): void {
    if (this.#closed) return;
    this.bytes.received += data.length;
    if (this.#held && isBinary) {
      this.#held.push(data);
      return;
    }
    this.#open(data, isBinary);
  }

  #open(data: Buffer, isBinary: boolean): void {
    if (this.#closed) return;
    let message: Message;
    let raw: Uint8Array;
    try {
      if (!isBinary) throw new MfpError('FRAME_MALFORMED', 'text frames are not part of the protocol');
      const max = this.#maxFrame;
      if (data.length > max) throw new MfpError('FRAME_TOO_LARGE', `frame of ${data.length} bytes exceeds ${max}`);
      const plain = this.#secure ? this.#secure.open(data) : data;
      message = decodeMessage(plain, max, this.#itemCodes);
      raw = plain;
    } catch (err) {
      const e = toMfpError(err, 'FRAME_MALFORMED');
      this.refuse(e.code, e.message);
      return;
    }
    if (message.type === SessionType.Refuse) {
      this.#closeReason ??= new MfpError(message.code, message.message);
    }
    // Everything after a welcome is sealed with keys its handler derives: hold it until then.
    if ((message.type === SessionType.Welcome || message.type === ReplicationType.Welcome) && this.#options.expectsWelcome && !this.#secure) {
      this.#held = [];
      // The larger limit applies from the welcome on (ws checks it at the next frame's header).
      setMaxPayload(this.#ws, MAX_FRAME_BYTES);
    }
    if (this.#options.outOfOrder?.(message)) {
      void this.#handle(message, raw);
      return;
    }
    // Handlers run one at a time, in arrival order; what waits for them is bounded (#count).
    const units = this.#options.pending?.units(message) ?? 0;
    this.#count(1, data.length, units);
    this.#chain = this.#chain.then(async () => {
      await this.#handle(message, raw);
      this.#count(-1, data.length, units);
    });
  }

  async #handle(message: Message, raw: Uint8Array): Promise<void> {
    if (this.#closed && message.type !== SessionType.Refuse) return;
    try {
      await this.#options.onMessage(message, raw);
    } catch (err) {
      const e = toMfpError(err, 'MESSAGE_UNEXPECTED');
      this.refuse(e.code, e.message);
    }
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#drainWaiters.splice(0)) w();
    this.#options.onClose(this.#closeReason);
  }
}
