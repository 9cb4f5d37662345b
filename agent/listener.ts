/**
 * The WebSocket listener every listening role shares (a server, a replication target): our own HTTP
 * server, so the upgrade request itself is bounded — headers within the handshake deadline (a
 * slow-loris upgrade is cut), small headers — and plain HTTP is answered 426. Every TCP connection is
 * counted from accept to close by source address (agent/source-caps.ts): one source cannot fill the
 * listener, and the machines of the group keep a share of it whoever floods it.
 */
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { MfpError } from '../protocol/errors.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_FRAME_BYTES } from '../protocol/limits.js';
import type { AuthSettings } from '../protocol/session.js';
import type { Clock } from './clock.js';
import type { AdminSecret, Identity } from './identity.js';
import type { SyncLog } from './logger.js';
import type { LoginLimiter } from './rate-limit.js';
import { SourceCaps, sourceOf, type Place, type SourceLimits } from './source-caps.js';

export type { Place } from './source-caps.js';

/** What every listening role (server, replication target) is given: who it is and where it listens. */
export interface ListeningRoleOptions {
  identity: Identity;
  admin: AdminSecret;
  /** The agent's limiter of administrator logins (one for every surface that checks the password). */
  limiter: LoginLimiter;
  settings: AuthSettings;
  clock: Clock;
  log: SyncLog;
  host: string;
  port: number;
  software: string;
  /** Handshake deadline (tests shorten it). */
  handshakeTimeoutMs?: number;
}

/** Options of a listener. */
export interface ListenerOptions {
  host: string;
  port: number;
  handshakeTimeoutMs?: number;
  log: SyncLog;
  /** Caps on connections and handshakes (tests lower them; defaults from protocol/limits.ts). */
  limits?: Partial<SourceLimits>;
  /** A WebSocket was opened; `place` is its connection's, which the role marks authenticated after the welcome. */
  onConnection: (ws: WebSocket, req: IncomingMessage, place: Place) => void;
}

/** A bound listener. */
export interface Listener {
  /** The port actually bound (for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Binds the port and accepts WebSocket connections. Throws ADDRESS_INCORRECT when the port cannot be bound. */
export async function listen(o: ListenerOptions): Promise<Listener> {
  const timeout = o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const http: HttpServer = createServer({ headersTimeout: timeout, requestTimeout: timeout, maxHeaderSize: 8192, connectionsCheckingInterval: Math.min(1000, timeout) });
  const caps = new SourceCaps(o.limits);
  const places = new WeakMap<Socket, Place>();
  // Counted at TCP accept, before any byte: an idle socket holds a handshake place like an upgraded one.
  http.on('connection', (socket: Socket) => {
    const place = caps.admit(sourceOf(socket.remoteAddress), () => socket.destroy());
    if (!place) {
      socket.destroy();
      return;
    }
    places.set(socket, place);
    socket.once('close', () => caps.release(place));
  });
  http.on('request', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('mfpsync speaks WebSocket only\n');
  });
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES, clientTracking: false });
  wss.on('error', (err) => o.log.error('SERVER_ERROR', err.message));
  wss.on('connection', (ws, req) => {
    const place = places.get(req.socket);
    // Displaced between its upgrade request and now: nothing to hand over.
    if (!place || !place.pending) {
      ws.terminate();
      return;
    }
    o.onConnection(ws, req, place);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('listening', resolve);
    http.once('error', (err) => reject(new MfpError('ADDRESS_INCORRECT', `cannot listen on ${o.host}:${o.port}: ${err.message}`, { cause: err })));
    http.listen(o.port, o.host);
  });
  http.on('error', (err) => o.log.error('SERVER_ERROR', err.message));
  const addr = http.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  return {
    port,
    async close() {
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
