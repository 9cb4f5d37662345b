/**
 * The Remote UI from a test: one agent process per test file with its Remote UI on a free port, and
 * an HTTPS client that trusts exactly that agent's certificate (its file in the data directory: the
 * certificate's SAN names 127.0.0.1, so the TLS check is the real one) and keeps a cookie like a browser.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { AgentProcess, freePort, type SpawnOptions } from '../../tools/fleet.js';

/** One answer. */
export interface UiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

/** A request's options. */
export interface UiRequest {
  /** A JSON body (sent as application/json). */
  json?: unknown;
  /** A raw body, sent as it is. */
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** The CSRF token to send (default: the one the login returned; null: none). */
  csrf?: string | null;
}

/** An agent with its Remote UI, shared by the tests of a file. */
export interface UiAgent {
  agent: AgentProcess;
  port: number;
  ca: string;
  client(o?: { localAddress?: string }): UiClient;
}

/** A browser-like client of one agent's Remote UI: keeps the session cookie and the CSRF token. */
export class UiClient {
  cookie: string | undefined;
  csrf: string | undefined;
  readonly #ui: { port: number; ca: string; localAddress?: string };

  constructor(ui: { port: number; ca: string; localAddress?: string }) {
    this.#ui = ui;
  }

  /** Sends one request over a fresh TLS connection. */
  request(method: string, path: string, o: UiRequest = {}): Promise<UiResponse> {
    const body = o.json !== undefined ? JSON.stringify(o.json) : o.body;
    const headers: Record<string, string> = {
      ...(o.json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(this.cookie ? { cookie: this.cookie } : {}),
      ...(o.csrf !== null && (o.csrf ?? this.csrf) ? { 'x-csrf-token': (o.csrf ?? this.csrf)! } : {}),
      ...o.headers,
    };
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: this.#ui.port, method, path, headers, ca: this.#ui.ca, agent: false, ...(this.#ui.localAddress ? { localAddress: this.#ui.localAddress } : {}) },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Logs in; on success keeps the cookie and the CSRF token. */
  async login(user: string, password: string): Promise<UiResponse> {
    const r = await this.request('POST', '/api/login', { json: { user, password }, csrf: null });
    const set = r.headers['set-cookie'];
    if (r.status === 200 && set) {
      this.cookie = set[0]!.split(';')[0];
      this.csrf = (r.json as { csrf: string }).csrf;
    }
    return r;
  }

  /** Calls an operation; returns the response. */
  op(name: string, params: unknown = {}, o: UiRequest = {}): Promise<UiResponse> {
    return this.request('POST', `/api/op/${name}`, { json: params, ...o });
  }
}

/** The error code of an answer. */
export function codeOf(r: UiResponse): string | undefined {
  return (r.json as { error?: { code?: string } } | undefined)?.error?.code;
}

/**
 * Starts one agent for the whole file (before), killed and its data removed after (always): a
 * before hook's own teardowns would run when the hook ends.
 */
export function sharedUiAgent(test: TestFn, options: Omit<SpawnOptions, 'dataDir'> & { uiArgs?: string[] }): () => UiAgent {
  let ui: UiAgent | undefined;
  const releases: (() => Promise<void> | void)[] = [];
  test.before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mfp-ui-'));
    releases.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const agent = await AgentProcess.launch(
      { defer: (_what, release) => releases.unshift(release) },
      { ...options, dataDir: join(dir, 'd'), runArgs: [...(options.runArgs ?? []), '--ui-port', String(port), ...(options.uiArgs ?? [])] },
    );
    const ca = readFileSync(join(agent.dataDir, 'ui-cert.pem'), 'utf8');
    ui = { agent, port, ca, client: (o = {}) => new UiClient({ port, ca, ...o }) };
  });
  test.after.always(async () => {
    for (const release of releases.splice(0)) await release();
  });
  return () => {
    if (!ui) throw new Error('the shared agent did not start');
    return ui;
  };
}
