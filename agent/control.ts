/**
 * The control socket: how the technician shell drives the running agent. A Unix socket in the data
 * directory (which is 0700) with mode 0600, so only the agent's owner can open it. One JSON request per
 * line, `{"id", "method", "params"}`; one JSON response per line, `{"id", "result"}` or
 * `{"id", "error": {"code", "message"}}`. Requests are bounded in size.
 *
 * `events.subscribe` (params `{"events": [names]}`, all when left out) answers `{"id", "result":
 * {"subscribed": [names]}}` and from then on the connection also carries the agent's events, one JSON
 * line each, `{"event": NAME, ...payload}`, until the client closes it (requests still work on it; a
 * second subscribe replaces the filter). A subscriber that does not read is dropped once the data
 * waiting for it passes MAX_SUBSCRIBER_BACKLOG, with a warning: it never grows the agent's memory.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dataDirError, isErrorCode, MfpError, toMfpError } from '../protocol/errors.js';

/** Handles one control request. */
export type ControlHandler = (method: string, params: Record<string, unknown>) => Promise<unknown>;

/** The event stream behind `events.subscribe`: starts sending the events named (or refuses), returns what it subscribed and how to stop. */
export type EventSource = (events: unknown, send: (event: object) => void) => { subscribed: readonly string[]; unsubscribe: () => void };

/** Options of the control socket beyond its requests. */
export interface ControlOptions {
  /** Serves `events.subscribe`; without it the method is unknown. */
  events?: EventSource;
  /** Told when a subscriber is dropped (it did not read). */
  warn?: (code: string, message: string) => void;
}

const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Bytes of events waiting for one subscriber (the kernel's socket buffer aside) before it is dropped. */
export const MAX_SUBSCRIBER_BACKLOG = 1024 * 1024;
/** Connections subscribed at once. */
export const MAX_SUBSCRIBERS = 32;

/** The agent's end of the control socket. */
export class ControlServer {
  readonly path: string;
  readonly #handler: ControlHandler;
  readonly #o: ControlOptions;
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  /** Subscribed connections and how each stops its events. */
  #subscribers = new Map<Socket, () => void>();

  constructor(path: string, handler: ControlHandler, options: ControlOptions = {}) {
    this.path = path;
    this.#handler = handler;
    this.#o = options;
  }

  /** How many connections follow the events now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Listens; replaces a stale socket file left by a dead agent, refuses if a live one answers. */
  async start(): Promise<void> {
    if (existsSync(this.path)) {
      if (await controlAnswers(this.path)) throw new MfpError('AGENT_RUNNING', `an agent already answers on ${this.path}`);
      unlinkSync(this.path);
    }
    const server = createServer((socket) => this.#serve(socket));
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => resolve());
      });
    } finally {
      process.umask(previous);
    }
    chmodSync(this.path, 0o600);
    this.#server = server;
  }

  /** Stops listening and removes the socket file. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#unsubscribe(socket);
    });
    socket.on('error', () => socket.destroy());
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST_BYTES) {
        socket.end(JSON.stringify({ id: null, error: { code: 'INVALID_ARGUMENT', message: 'request too large' } }) + '\n');
        return;
      }
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        void this.#answer(socket, line);
      }
    });
  }

  async #answer(socket: Socket, line: string): Promise<void> {
    let id: unknown = null;
    let response: unknown;
    try {
      const req = JSON.parse(line) as { id?: unknown; method?: unknown; params?: unknown };
      id = req.id ?? null;
      if (typeof req.method !== 'string') throw new MfpError('INVALID_ARGUMENT', 'request needs a method');
      const params = typeof req.params === 'object' && req.params !== null ? (req.params as Record<string, unknown>) : {};
      if (req.method === 'events.subscribe' && this.#o.events) {
        this.#subscribe(socket, id, params);
        return;
      }
      response = { id, result: (await this.#handler(req.method, params)) ?? null };
    } catch (err) {
      const e = err instanceof TypeError ? new MfpError('INVALID_ARGUMENT', err.message) : toMfpError(err, 'INVALID_ARGUMENT');
      response = { id, error: { code: e.code, message: e.message } };
    }
    if (!socket.destroyed) socket.write(JSON.stringify(response) + '\n');
  }

  /** Answers `events.subscribe`, then sends the events; throws INVALID_ARGUMENT for a bad filter. */
  #subscribe(socket: Socket, id: unknown, params: Record<string, unknown>): void {
    const unknown = Object.keys(params).filter((k) => k !== 'events');
    if (unknown.length > 0) throw new MfpError('INVALID_ARGUMENT', `events.subscribe: unknown parameter ${JSON.stringify(unknown[0])}; it takes events`);
    if (!this.#subscribers.has(socket) && this.#subscribers.size >= MAX_SUBSCRIBERS) {
      throw new MfpError('INVALID_ARGUMENT', `events.subscribe: ${MAX_SUBSCRIBERS} connections already follow the events`);
    }
    const { subscribed, unsubscribe } = this.#o.events!(params.events, (event) => this.#send(socket, event));
    this.#unsubscribe(socket);
    this.#subscribers.set(socket, unsubscribe);
    socket.write(JSON.stringify({ id, result: { subscribed } }) + '\n');
  }

  /** Sends one event, or drops a subscriber whose backlog passed the bound. */
  #send(socket: Socket, event: object): void {
    if (socket.destroyed) return;
    if (socket.writableLength > MAX_SUBSCRIBER_BACKLOG) {
      this.#unsubscribe(socket);
      socket.destroy();
      this.#o.warn?.('EVENTS_DROPPED', `an events.subscribe client of the control socket did not read its events (over ${MAX_SUBSCRIBER_BACKLOG} bytes waiting): it was disconnected`);
      return;
    }
    socket.write(JSON.stringify(event) + '\n');
  }

  #unsubscribe(socket: Socket): void {
    const off = this.#subscribers.get(socket);
    this.#subscribers.delete(socket);
    off?.();
  }
}

/** Sends one request to the agent of a data directory and returns its result (or throws its coded error). */
export async function callControl(path: string, method: string, params: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<unknown> {
  return new Promise<unknown>((resolve, reject) => {
    const socket = createConnection(path);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new MfpError('CONTROL_FAILED', `the agent did not answer ${method} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(JSON.stringify({ id: 1, method, params }) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        const res = JSON.parse(buffer.slice(0, nl)) as { result?: unknown; error?: { code?: unknown; message?: unknown } };
        if (res.error) {
          const code = isErrorCode(res.error.code) ? res.error.code : 'CONTROL_FAILED';
          reject(new MfpError(code, String(res.error.message ?? 'failed')));
        } else resolve(res.result);
      } catch (err) {
        reject(new MfpError('CONTROL_FAILED', 'the agent answered with malformed JSON', { cause: err }));
      }
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new MfpError('AGENT_NOT_RUNNING', `no agent is running on this data directory (${path}): start it with \`mfpsync run\``));
      } else reject(dataDirError(err, path, 'reach the agent\'s control socket') ?? new MfpError('CONTROL_FAILED', err.message, { cause: err }));
    });
  });
}

/** Whether a live agent answers on a control socket path (a stale socket file does not). */
export function controlAnswers(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}
