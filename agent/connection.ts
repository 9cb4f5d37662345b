/**
 * A WebSocket carrying protocol frames: decodes and validates every incoming frame with the codec and
 * hands typed messages to one handler, one at a time, in order. A frame that fails to decode, or a
 * handler that throws a coded error, ends the session with a `refuse` naming the code.
 */
import type { WebSocket } from 'ws';
import { decodeMessage, encodeMessage, type Message } from '../protocol/codec.js';
import { MfpError, toMfpError, type ErrorCode } from '../protocol/errors.js';
import { SessionType } from '../protocol/session.js';

/** Options of a connection. */
export interface ConnectionOptions {
  onMessage: (message: Message, raw: Uint8Array) => Promise<void> | void;
  onClose: (reason: MfpError | undefined) => void;
  /** Frame limit enforced before decoding (ws enforces its maxPayload before buffering). */
  maxFrameBytes: () => number;
}

const HIGH_WATER = 4 * 1024 * 1024;

/** A protocol connection over one WebSocket. */
export class Connection {
  readonly #ws: WebSocket;
  readonly #options: ConnectionOptions;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  #closeReason: MfpError | undefined;
  #drainWaiters: (() => void)[] = [];
  /** Bytes sent and received, for the benchmark's wire figures. */
  readonly bytes = { sent: 0, received: 0 };

  constructor(ws: WebSocket, options: ConnectionOptions) {
    this.#ws = ws;
    this.#options = options;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#receive(data, isBinary));
    ws.on('close', () => this.#finish());
    ws.on('error', (err) => {
      this.#closeReason ??= new MfpError('PEER_GONE', err.message, { cause: err });
    });
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one message; false if the connection is closed. */
  send(message: Message): boolean {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return false;
    const bytes = encodeMessage(message);
    this.bytes.sent += bytes.length;
    this.#ws.send(bytes, { binary: true }, () => this.#checkDrain());
    return true;
  }

  /** Sends pre-encoded bytes (the signed handshake frames). */
  sendBytes(bytes: Uint8Array): boolean {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return false;
    this.bytes.sent += bytes.length;
    this.#ws.send(bytes, { binary: true }, () => this.#checkDrain());
    return true;
  }

  /** Resolves when the socket's send buffer is below the high-water mark. */
  async drained(): Promise<void> {
    if (this.#ws.bufferedAmount < HIGH_WATER || this.#closed) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  #checkDrain(): void {
    if (this.#ws.bufferedAmount >= HIGH_WATER && !this.#closed) return;
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  /** Sends a refusal with a code, then closes. */
  refuse(code: ErrorCode, message: string): void {
    this.#closeReason ??= new MfpError(code, message);
    this.send({ type: SessionType.Refuse, code, message });
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
    let message: Message;
    try {
      if (!isBinary) throw new MfpError('FRAME_MALFORMED', 'text frames are not part of the protocol');
      const max = this.#options.maxFrameBytes();
      if (data.length > max) throw new MfpError('FRAME_TOO_LARGE', `frame of ${data.length} bytes exceeds ${max}`);
      message = decodeMessage(data, max);
    } catch (err) {
      const e = toMfpError(err, 'FRAME_MALFORMED');
      this.refuse(e.code, e.message);
      return;
    }
    if (message.type === SessionType.Refuse) {
      this.#closeReason ??= new MfpError(message.code, message.message);
    }
    // Handlers run one at a time, in arrival order.
    this.#chain = this.#chain.then(async () => {
      if (this.#closed && message.type !== SessionType.Refuse) return;
      try {
        await this.#options.onMessage(message, data);
      } catch (err) {
        const e = toMfpError(err, 'MESSAGE_UNEXPECTED');
        this.refuse(e.code, e.message);
      }
    });
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#drainWaiters.splice(0)) w();
    this.#options.onClose(this.#closeReason);
  }
}
