/**
 * The HTTP API of the agent's Remote UI server, and nothing else: POST /api/login, POST /api/logout,
 * GET /api/session, POST /api/op/:name (the operation's params as the body, X-CSRF-Token), and the
 * event stream GET /api/events. Errors come as {error:{code,message}} with the project's codes.
 */

/** A refusal from the agent: its code (CLIENTS_ACTIVE, …), its message and the HTTP status. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
  }
}

/** What GET /api/session answers. */
export interface Session {
  user: string;
  csrf: string;
  lang?: string;
}

let csrf = '';
let onUnauthorized: () => void = () => {};

/** What to do when the session has expired (show the login screen). */
export function whenUnauthorized(f: () => void): void {
  onUnauthorized = f;
}

async function call<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method === 'POST') {
    headers['content-type'] = 'application/json';
    if (csrf) headers['x-csrf-token'] = csrf;
  }
  const res = await fetch(url, { method, headers, credentials: 'same-origin', ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}) });
  const text = await res.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
    const err = new ApiError(e?.code ?? `HTTP_${res.status}`, e?.message ?? res.statusText, res.status);
    if (res.status === 401 && !url.endsWith('/login') && !url.endsWith('/session')) onUnauthorized();
    throw err;
  }
  return data as T;
}

/** The current session, or an ApiError with status 401. */
export async function session(): Promise<Session> {
  const s = await call<Session>('GET', '/api/session');
  csrf = s.csrf;
  return s;
}

/** Logs in with the machine's administrator account. */
export async function login(user: string, password: string): Promise<void> {
  const r = await call<{ csrf: string }>('POST', '/api/login', { user, password });
  csrf = r.csrf;
}

/** Ends the session. */
export async function logout(): Promise<void> {
  await call('POST', '/api/logout', {});
  csrf = '';
}

/** Runs an administrator operation (the same table the shell uses) and returns its result. */
export async function op<T = Record<string, unknown>>(name: string, params: Record<string, unknown> = {}): Promise<T> {
  const r = await call<{ result: T }>('POST', `/api/op/${encodeURIComponent(name)}`, params);
  return r.result;
}

/** One agent event as GET /api/events sends it: `{event, ...payload}`. */
export type AgentEvent = Record<string, unknown> & { event: string };

const EVENT_NAMES = ['item-changed', 'sync-state', 'deep-sleep', 'device-state', 'join-progress', 'changes-acked', 'entity-deleted', 'replicated', 'login-again'];

/** Follows the agent's events; returns a stop function. Named SSE events and plain `data:` lines both work. */
export function follow(onEvent: (e: AgentEvent) => void): () => void {
  const source = new EventSource('/api/events');
  const handle = (type: string) => (m: MessageEvent<string>) => {
    try {
      const data = JSON.parse(m.data) as Record<string, unknown>;
      onEvent({ ...data, event: typeof data.event === 'string' ? data.event : type });
    } catch {
      // A line that is not JSON (a comment, a keep-alive) carries nothing to show.
    }
  };
  source.onmessage = handle('message');
  for (const name of EVENT_NAMES) source.addEventListener(name, handle(name) as EventListener);
  return () => source.close();
}
