/**
 * A TCP fault proxy for tests, benchmarks and soaks: sits between agents on 127.0.0.1 and counts bytes,
 * delays (with jitter), caps bandwidth, slices writes into tiny chunks, stalls, cuts connections (now,
 * or at a byte offset), resets them (TCP RST), and refuses new ones (a partition). Faults are injected
 * on real sockets, never by mocking agent code.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';

/** Options of a proxy. */
export interface FaultProxyOptions {
  targetHost?: string;
  targetPort: number;
  /** Port to listen on (0: any). */
  port?: number;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** Events of a proxy. */
export interface FaultProxyEvents {
  connection: [];
  cut: [];
  /**
   * A chunk arrived, before any fault applies to it: its direction and its index among that
   * connection's chunks in that direction (0 first). A listener may arm a fault for this very chunk
   * (e.g. `cutOnceAfter(dir, 0)`: cut before it is forwarded) — how a test cuts at a protocol step.
   */
  chunk: [dir: 'up' | 'down', index: number, bytes: number];
}

/** A TCP proxy with fault injection. */
export class FaultProxy extends EventEmitter<FaultProxyEvents> {
  readonly #server: Server;
  readonly #o: FaultProxyOptions;
  #pairs = new Set<Pair>();
  /** Bytes forwarded client → server and server → client. */
  readonly bytes = { up: 0, down: 0 };
  /** Delay added to every chunk, in ms, plus uniform jitter up to `jitterMs`. */
  delayMs = 0;
  jitterMs = 0;
  /** Writes are split into chunks of at most this many bytes (0: as received). */
  sliceBytes = 0;
  /** Each connection forwards at most this many bytes per second in each direction (0: no cap). */
  bytesPerSecond = 0;
  /** New connections are refused (closed at once) while true. */
  refusing = false;
  #cutAfter: { up?: number; down?: number } = {};
  #cutOnNextUp = false;
  #cutOnce: { dir: 'up' | 'down'; remaining: number } | undefined;
  /** While stalled: resolves when forwarding may go on. */
  #stall: { done: Promise<void>; release: () => void } | undefined;

  private constructor(server: Server, options: FaultProxyOptions) {
    super();
    this.#server = server;
    this.#o = options;
  }

  /** Starts a proxy to `targetHost:targetPort`. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = createServer();
    const proxy = new FaultProxy(server, options);
    server.on('connection', (socket) => proxy.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  /** The port the proxy listens on. */
  get port(): number {
    const a = this.#server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Open connections. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** Cuts every open connection now (a reset), keeping the listener. */
  cutAll(): void {
    for (const p of this.#pairs) this.#cut(p);
  }

  /** Cuts each new connection once `bytes` have passed in a direction (counted per connection). */
  cutAfter(direction: 'up' | 'down', bytes: number | undefined): void {
    this.#cutAfter[direction] = bytes;
  }

  /**
   * Forwards the next client → server chunk, then cuts that connection at once: the server gets the
   * frame, the client never gets the answer (a lost acknowledgement).
   */
  cutOnNextUp(): void {
    this.#cutOnNextUp = true;
  }

  /**
   * Cuts the connection that next carries `bytes` more bytes in `direction` (open now or future) at
   * exactly that offset, once: a cut at a random byte offset, in the middle of a frame. `undefined`
   * disarms a cut that has not happened.
   */
  cutOnceAfter(direction: 'up' | 'down', bytes: number | undefined): void {
    this.#cutOnce = bytes === undefined ? undefined : { dir: direction, remaining: Math.max(0, bytes) };
  }

  /** Whether a cutOnceAfter is still waiting for its offset. */
  get cutPending(): boolean {
    return this.#cutOnce !== undefined;
  }

  /** Resets every open connection (TCP RST on both sides, not a FIN), keeping the listener. */
  resetAll(): void {
    for (const p of this.#pairs) this.#cut(p, true);
  }

  /**
   * Holds every byte in flight and to come, both directions, until resume(): the connections stay
   * open but silent (a stall; peers see it only through their own timeouts).
   */
  stall(): void {
    if (this.#stall) return;
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    this.#stall = { done, release };
  }

  /** Ends a stall: held bytes are forwarded in order. */
  resume(): void {
    const s = this.#stall;
    this.#stall = undefined;
    s?.release();
  }

  /** Whether the proxy is stalled. */
  get stalled(): boolean {
    return this.#stall !== undefined;
  }

  /** Stops listening and cuts everything. */
  async close(): Promise<void> {
    this.resume();
    this.cutAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(this.#o.targetPort, this.#o.targetHost ?? '127.0.0.1');
    const pair = { client, upstream };
    this.#pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const seen = { up: 0, down: 0 };
    this.#pipe(pair, client, upstream, 'up', seen);
    this.#pipe(pair, upstream, client, 'down', seen);
    const end = () => this.#cut(pair);
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
    this.emit('connection');
  }

  #pipe(pair: Pair, from: Socket, to: Socket, dir: 'up' | 'down', seen: { up: number; down: number }): void {
    let chain = Promise.resolve();
    let index = 0;
    from.on('data', (data: Buffer) => {
      this.emit('chunk', dir, index++, data.length);
      const limit = this.#cutAfter[dir];
      let chunk = data;
      let cutNow = false;
      if (limit !== undefined && seen[dir] + data.length >= limit) {
        chunk = data.subarray(0, Math.max(0, limit - seen[dir]));
        cutNow = true;
      }
      const once = this.#cutOnce;
      if (once && once.dir === dir) {
        if (chunk.length >= once.remaining) {
          chunk = chunk.subarray(0, once.remaining);
          cutNow = true;
          this.#cutOnce = undefined;
        } else {
          once.remaining -= chunk.length;
        }
      }
      if (dir === 'up' && this.#cutOnNextUp) {
        this.#cutOnNextUp = false;
        cutNow = true;
      }
      seen[dir] += chunk.length;
      this.bytes[dir] += chunk.length;
      const delay = this.delayMs + Math.random() * this.jitterMs;
      const slices: Buffer[] = [];
      const size = this.sliceBytes > 0 ? this.sliceBytes : chunk.length || 1;
      for (let i = 0; i < chunk.length; i += size) slices.push(chunk.subarray(i, i + size));
      chain = chain.then(async () => {
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        for (const s of slices) {
          while (this.#stall) await this.#stall.done;
          if (to.destroyed) return;
          // Before a cut, the bytes up to the offset must have left (a socket still connecting buffers them).
          if (cutNow && s === slices[slices.length - 1]) await new Promise((r) => to.write(s, r));
          else to.write(s);
          // The cap paces each connection's direction: a slice of n bytes occupies n / rate seconds.
          if (this.bytesPerSecond > 0) await new Promise((r) => setTimeout(r, (s.length * 1000) / this.bytesPerSecond));
          else if (this.sliceBytes > 0) await new Promise((r) => setImmediate(r));
        }
        if (cutNow) this.#cut(pair);
      });
    });
  }

  #cut(pair: Pair, reset = false): void {
    if (!this.#pairs.delete(pair)) return;
    for (const s of [pair.client, pair.upstream]) {
      // resetAndDestroy needs a connected socket; one still connecting is just destroyed.
      if (reset && !s.connecting && !s.destroyed) s.resetAndDestroy();
      else s.destroy();
    }
    this.emit('cut');
  }
}
