/**
 * The Remote UI's HTTP application (Fastify): the JSON API the pages call, and the pages themselves as
 * static files. Loaded by the Remote UI's HTTPS server at its first request (see ./index.ts).
 *
 *   POST /api/login {user,password}   → {user, csrf, lang}; sets the session cookie
 *   POST /api/logout                  → {loggedOut: true}                         (session, CSRF)
 *   GET  /api/session                 → {user, csrf, lang}, or 401 AUTH_REQUIRED
 *   POST /api/op/:name  (params)      → {result} | {error}                       (session, CSRF)
 *   GET  /api/events                  → text/event-stream of the agent's events    (session)
 *   GET  /api/download/export         → the file the last `export` operation wrote (session)
 *   PUT  /api/upload/import  (bytes)  → {bytes}: the file the next `import` reads   (session, CSRF)
 *   GET  /*                           → the pages (ui/)
 *
 * Every error is `{error:{code,message}}` with the project's codes. Operations that name files on the
 * agent are given the Remote UI's own files instead (export, import) or limited to the device and the
 * network (backup, restore): a browser never names a path on the machine.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { MfpError, toMfpError, type ErrorCode } from '../../protocol/errors.js';
import { MAX_EXPORT_BYTES } from '../../storage/export-file.js';
import type { Agent } from '../agent.js';
import { sourceOf } from '../source-caps.js';
import type { Invoke } from './adapter.js';
import type { EventStreams } from './events.js';
import { sameToken, type Session, type SessionTable } from './sessions.js';

/** The session cookie: `__Host-` binds it to this origin (Secure, Path=/, no Domain). */
export const SESSION_COOKIE = '__Host-mfpsync-session';
/** The header that carries the session's CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';
/** A JSON body at most this large (parameters of one operation). */
export const MAX_BODY_BYTES = 64 * 1024;
/** The languages of the pages (ui/i18n/*.json). */
export const LANGUAGES = ['en', 'pl'] as const;

/** What the application needs. */
export interface AppOptions {
  agent: Agent;
  sessions: SessionTable;
  streams: EventStreams;
  invoke: Invoke;
  /** Where the Remote UI keeps its files (the export to download, the upload to import): DATA/remote-ui. */
  filesDir: string;
  /** Folders of the pages, first match wins. */
  staticRoots: readonly string[];
}

/** HTTP status of a coded error. */
function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'AUTH_REQUIRED':
    case 'AUTH_INCORRECT':
      return 401;
    case 'CSRF_INVALID':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'REQUEST_TOO_LARGE':
      return 413;
    case 'AUTH_LOCKED':
      return 429;
    case 'USAGE':
    case 'INVALID_ARGUMENT':
    case 'REQUEST_MALFORMED':
    case 'UNKNOWN_ITEM':
    case 'VALUE_TOO_LARGE':
      return 400;
    case 'STORE_CLOSED':
    case 'STORE_WRITE_FAILED':
    case 'STORE_CORRUPT':
    case 'CONTROL_FAILED':
      return 500;
    default:
      // The operation was understood and refused (wrong role, clients active, a backup failure, …).
      return 409;
  }
}

/** Fastify's own errors (body parsing, validation) as the project's codes. */
function codedError(err: unknown): MfpError {
  if (err instanceof MfpError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: unknown };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new MfpError('REQUEST_TOO_LARGE', `the request body exceeds ${MAX_BODY_BYTES} bytes`);
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new MfpError('REQUEST_MALFORMED', 'the request body must be application/json');
  if (e.validation !== undefined || (e.code?.startsWith('FST_ERR_CTP_') ?? false) || e.statusCode === 400) {
    return new MfpError('REQUEST_MALFORMED', `the request is malformed: ${e.message ?? ''}`);
  }
  return err instanceof TypeError ? new MfpError('INVALID_ARGUMENT', err.message) : toMfpError(err, 'INVALID_ARGUMENT');
}

function send(reply: FastifyReply, err: unknown): FastifyReply {
  const e = codedError(err);
  return reply.code(statusOf(e.code)).send({ error: { code: e.code, message: e.message } });
}

/** The page language from Accept-Language: the first of `pl`/`en` by weight, else English. */
export function languageOf(header: string | undefined): (typeof LANGUAGES)[number] {
  const ranked = (header ?? '')
    .split(',')
    .map((part, i) => {
      const [tag, ...params] = part.trim().toLowerCase().split(';');
      const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((x) => x !== undefined);
      return { lang: (tag ?? '').split('-')[0]!, q: q === undefined ? 1 : Number(q), i };
    })
    .filter((x) => x.q > 0 && (LANGUAGES as readonly string[]).includes(x.lang))
    .sort((a, b) => b.q - a.q || a.i - b.i);
  return (ranked[0]?.lang as (typeof LANGUAGES)[number] | undefined) ?? 'en';
}

/** Fails unless the place is the device or a network share (no path on the machine from a browser). */
function devicesOrNetwork(p: Record<string, unknown>, name: 'to' | 'from'): void {
  const v = p[name];
  if (typeof v === 'string' && v !== 'device' && !v.startsWith('smb://')) {
    throw new MfpError('INVALID_ARGUMENT', `the Remote UI backs up to and restores from "device" or smb://HOST/SHARE/DIR, not ${JSON.stringify(v)}`);
  }
}

/** Builds the application (not listening: the Remote UI's server routes its requests to it). */
export async function buildApp(o: AppOptions): Promise<FastifyInstance> {
  // Schemas check, they do not repair: no type coercion, no silent removal of unknown fields.
  const app = Fastify({ logger: false, bodyLimit: MAX_BODY_BYTES, return503OnClosing: true, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  const files = { export: join(o.filesDir, 'export.bin'), import: join(o.filesDir, 'import.bin') };
  // JSON only: a cross-site form (text/plain, urlencoded) is refused before anything else looks at it.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  app.setErrorHandler((err, _req, reply) => send(reply, err));
  app.setNotFoundHandler((req, reply) => send(reply, new MfpError('NOT_FOUND', `no such page or API route: ${req.method} ${req.url.split('?')[0]}`)));

  await app.register(cookie);
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
    referrerPolicy: { policy: 'no-referrer' },
  });
  app.addHook('onSend', async (req, reply, payload) => {
    // The API and the pages show personal data: never kept by the browser or a proxy. Scripts, styles
    // and catalogs are revalidated each time (a newer agent's pages replace them at once).
    const type = String(reply.getHeader('content-type') ?? '');
    reply.header('cache-control', req.url.startsWith('/api/') || type.startsWith('text/html') || reply.statusCode >= 400 ? 'no-store' : 'no-cache');
    return payload;
  });

  /** The request's live session (marked used), or AUTH_REQUIRED. */
  const sessionOf = (req: FastifyRequest, touch = true): Session => {
    const id = req.cookies[SESSION_COOKIE];
    const s = touch ? o.sessions.touch(id) : o.sessions.peek(id);
    if (!s) throw new MfpError('AUTH_REQUIRED', 'log in to the Remote UI (no session, or it expired after 30 minutes idle)');
    return s;
  };
  /** The session of a state-changing request: it must carry the session's CSRF token. */
  const changing = (req: FastifyRequest): Session => {
    const s = sessionOf(req);
    const token = req.headers[CSRF_HEADER];
    if (!sameToken(typeof token === 'string' ? token : undefined, s.csrf)) throw new MfpError('CSRF_INVALID', `the request lacks this session's ${CSRF_HEADER} header`);
    return s;
  };
  const sessionBody = (req: FastifyRequest, s: Session) => ({ user: s.user, csrf: s.csrf, lang: languageOf(req.headers['accept-language']) });
  const cookieOptions = { path: '/', httpOnly: true, secure: true, sameSite: 'strict' as const };

  app.post(
    '/api/login',
    {
      schema: {
        body: {
          type: 'object',
          required: ['user', 'password'],
          additionalProperties: false,
          properties: { user: { type: 'string', minLength: 1, maxLength: 128 }, password: { type: 'string', maxLength: 1024 } },
        },
      },
    },
    async (req, reply) => {
      const { user, password } = req.body as { user: string; password: string };
      const socket = req.raw.socket;
      await o.agent.checkAdminPassword({ address: sourceOf(socket.remoteAddress), remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, user, password });
      // A new id at each login: a cookie planted before it is worth nothing after.
      const old = req.cookies[SESSION_COOKIE];
      if (old !== undefined) o.sessions.end(old);
      const s = o.sessions.create(user);
      o.agent.log.info('ADMIN', `Remote UI login of "${user}" from ${socket.remoteAddress ?? '?'}`);
      reply.setCookie(SESSION_COOKIE, s.id, cookieOptions);
      return sessionBody(req, s);
    },
  );

  app.post('/api/logout', async (req, reply) => {
    const s = changing(req);
    o.sessions.end(s.id);
    reply.clearCookie(SESSION_COOKIE, cookieOptions);
    return { loggedOut: true };
  });

  app.get('/api/session', async (req, reply) => {
    try {
      return sessionBody(req, sessionOf(req));
    } catch (err) {
      // The language comes back without a session too: the login page needs it.
      const e = codedError(err);
      return reply.code(statusOf(e.code)).send({ error: { code: e.code, message: e.message }, lang: languageOf(req.headers['accept-language']) });
    }
  });

  app.post('/api/op/:name', { schema: { params: { type: 'object', properties: { name: { type: 'string', maxLength: 64 } } } } }, async (req) => {
    changing(req);
    const { name } = req.params as { name: string };
    const body = req.body ?? {};
    if (typeof body !== 'object' || Array.isArray(body)) throw new MfpError('REQUEST_MALFORMED', 'the parameters of an operation are a JSON object');
    const params = { ...(body as Record<string, unknown>) };
    if (name === 'export') {
      mkdirSync(o.filesDir, { recursive: true, mode: 0o700 });
      params.path = files.export;
    } else if (name === 'import') {
      if (!existsSync(files.import)) throw new MfpError('INVALID_ARGUMENT', 'upload the export file first (PUT /api/upload/import)');
      params.path = files.import;
    } else if (name === 'backup') devicesOrNetwork(params, 'to');
    else if (name === 'restore') devicesOrNetwork(params, 'from');
    const result = await o.invoke(name, params);
    return { result, ...(name === 'export' ? { download: '/api/download/export' } : {}) };
  });

  app.get('/api/events', async (req, reply) => {
    const s = sessionOf(req);
    reply.hijack();
    const headers = Object.fromEntries(Object.entries(reply.getHeaders()).map(([k, v]) => [k, String(v)]));
    o.streams.open(s.id, reply.raw, headers);
  });

  app.get('/api/download/export', async (req, reply) => {
    sessionOf(req);
    if (!existsSync(files.export)) throw new MfpError('NOT_FOUND', 'no export file: run the export first');
    const stamp = new Date(o.agent.clock.now()).toISOString().slice(0, 10);
    reply.header('content-type', 'application/octet-stream');
    reply.header('content-disposition', `attachment; filename="mfpsync-export-${stamp}.bin"`);
    return reply.send(createReadStream(files.export));
  });

  app.put('/api/upload/import', async (req) => {
    changing(req);
    if (!String(req.headers['content-type'] ?? '').startsWith('application/octet-stream')) {
      throw new MfpError('REQUEST_MALFORMED', 'upload the export file as application/octet-stream');
    }
    mkdirSync(o.filesDir, { recursive: true, mode: 0o700 });
    const tmp = `${files.import}.tmp`;
    let bytes = 0;
    const cap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        done(bytes > MAX_EXPORT_BYTES ? new MfpError('REQUEST_TOO_LARGE', `an export file is at most ${MAX_EXPORT_BYTES} bytes`) : null, chunk);
      },
    });
    try {
      await pipeline(req.body as NodeJS.ReadableStream, cap, createWriteStream(tmp, { mode: 0o600 }));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    renameSync(tmp, files.import);
    return { bytes };
  });

  const roots = o.staticRoots.filter((r) => existsSync(r));
  if (roots.some((r) => existsSync(join(r, 'index.html')))) {
    await app.register(fastifyStatic, {
      root: roots,
      prefix: '/',
      cacheControl: false,
      // Only what a browser loads: no TypeScript or source maps, should a build leave any there.
      allowedPath: (path) => !/\.(ts|map)$/.test(path),
    });
  } else {
    // No pages built (a checkout without ui/): a placeholder, so that the server is still checkable.
    app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><meta charset="utf-8"><title>mfpsync Remote UI</title><p>The Remote UI pages are not installed.</p>'));
  }
  await app.ready();
  return app;
}
