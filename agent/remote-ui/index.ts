/**
 * The Remote UI (SPEC §12): an HTTPS server on `run --ui-port` (default 8444), on the `--host`
 * address, with the machine's own certificate. Plain HTTP is never answered: a request that is not
 * TLS fails the handshake and the connection is closed with no content.
 *
 * The server is a bare `node:https` server from the start; the application (Fastify and its plugins,
 * ./app.ts) is imported at the first request. Loaded at start it would cost every idle agent about
 * 20 MB of RSS and a third of a second on an MFP's CPU for a UI that is opened now and then.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MfpError } from '../../protocol/errors.js';
import type { Agent } from '../agent.js';
import type { Invoke, Subscribe } from './adapter.js';
import { ensureCertificate, type UiCertificate } from './certificate.js';
import { EventStreams } from './events.js';
import { SessionTable } from './sessions.js';

/** The Remote UI's default port (SPEC §11). */
export const DEFAULT_UI_PORT = 8444;
/** Connections at most: a few administrators' browsers, each with a handful. */
const MAX_CONNECTIONS = 64;

/** The Remote UI's settings, beside the agent's (`run --ui-port`). */
export interface RemoteUiSettings {
  /** The HTTPS port (default 8444); 0 turns the Remote UI off. */
  uiPort?: number;
  /** How long a session lives without a request (default 30 minutes; tests shorten it). */
  uiIdleMs?: number;
}

/** Options of the Remote UI. */
export interface RemoteUiOptions extends RemoteUiSettings {
  agent: Agent;
  /** The address to listen on (the agent's `--host`; default all interfaces). */
  host?: string;
  /** The administrator operations, as the control socket runs them. */
  invoke: Invoke;
  /** The agent's events (default: as `run --events` prints them). */
  subscribe?: Subscribe;
  /** Folders of the pages, first match wins (default: dist/ui of this package, which the build makes from ui/). */
  staticRoots?: readonly string[];
}

/** A started Remote UI. */
export interface RemoteUi {
  port: number;
  fingerprint: string;
  stop(): Promise<void>;
}

/** The package's root, from this file's place in dist/agent/remote-ui/. */
const PACKAGE_ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');

/** Starts the Remote UI unless its port is 0 (then undefined); makes the certificate if the data directory has none. */
export async function startRemoteUi(o: RemoteUiOptions): Promise<RemoteUi | undefined> {
  const port = o.uiPort ?? DEFAULT_UI_PORT;
  if (port === 0) return undefined;
  const { agent } = o;
  const cert: UiCertificate = await ensureCertificate(agent.dataDir, { name: agent.status().name, ...(o.host ? { hosts: [o.host] } : {}) });
  let streams: EventStreams | undefined;
  const sessions = new SessionTable({ clock: agent.clock, ...(o.uiIdleMs !== undefined ? { idleMs: o.uiIdleMs } : {}), onEnd: (id) => streams?.closeSession(id) });
  const server: Server = createServer({ key: cert.key, cert: cert.cert, minVersion: 'TLSv1.2' });
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = 10_000;
  // Every connection, to end them at stop (event streams never end on their own).
  const sockets = new Set<Socket>();
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  // Not TLS, or a client that gave up: nothing to answer, the socket is closed.
  server.on('tlsClientError', (_err, s) => s.destroy());
  let app: Promise<{ route: (req: IncomingMessage, res: ServerResponse) => void; close: () => Promise<void> }> | undefined;
  const load = async () => {
    const [{ buildApp }, adapter] = await Promise.all([import('./app.js'), import('./adapter.js')]);
    streams = new EventStreams(o.subscribe ?? adapter.eventsOf(agent), (id) => sessions.peek(id) !== undefined);
    const built = await buildApp({
      agent,
      sessions,
      streams,
      invoke: o.invoke,
      filesDir: join(agent.dataDir, 'remote-ui'),
      staticRoots: o.staticRoots ?? [join(PACKAGE_ROOT, 'dist', 'ui')],
    });
    return { route: (req: IncomingMessage, res: ServerResponse) => built.routing(req, res), close: () => built.close() };
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    (app ??= load()).then(
      (a) => a.route(req, res),
      (err: Error) => {
        agent.log.error('CONTROL_FAILED', `the Remote UI could not load: ${err.message}`);
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'CONTROL_FAILED', message: 'the Remote UI could not load' } }));
      },
    );
  });
  await new Promise<void>((resolveListen, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES'
          ? new MfpError('INVALID_ARGUMENT', `the Remote UI cannot listen on port ${port} (${err.code}): choose another with --ui-port, or 0 to turn it off`, { cause: err })
          : err,
      );
    };
    server.once('error', onError);
    server.listen(port, o.host ?? '::', () => {
      server.off('error', onError);
      resolveListen();
    });
  });
  const bound = (server.address() as { port: number }).port;
  agent.remoteUi = { port: bound, fingerprint: cert.fingerprint };
  agent.log.info('REMOTE_UI', `Remote UI on https://${o.host && o.host !== '::' ? o.host : 'localhost'}:${bound}/ (certificate SHA-256 ${cert.fingerprint})`);
  let stopping: Promise<void> | undefined;
  return {
    port: bound,
    fingerprint: cert.fingerprint,
    stop: () =>
      (stopping ??= (async () => {
        agent.remoteUi = undefined;
        const closed = new Promise<void>((r) => server.close(() => r()));
        streams?.closeAll();
        sessions.clear();
        for (const s of sockets) s.destroy();
        await closed;
        if (app) await (await app.catch(() => undefined))?.close();
      })()),
  };
}
