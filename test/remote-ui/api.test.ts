/**
 * The Remote UI's HTTP API through real HTTPS against one agent process (shared by the file): the
 * certificate and its fingerprint, refusal without a session, CSRF, the XSS-shaped names, bodies that
 * are too large or malformed, headers and cookie attributes, plain HTTP, the operations (and the
 * files they take), and the event stream.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { controlMethods } from '../../agent/daemon.js';
import { humanShell } from '../../tools/fleet.js';
import { codeOf, sharedUiAgent, UiClient } from '../helpers/remote-ui.js';

const XSS = '<img src=x onerror=alert(1)>';
const ui = sharedUiAgent(test, { name: XSS, adminPassword: 'ui-pw' });

/** A logged-in client. */
async function admin(): Promise<UiClient> {
  const c = ui().client();
  const r = await c.login('admin', 'ui-pw');
  if (r.status !== 200) throw new Error(`login failed: ${r.text}`);
  return c;
}

/** The names of the control methods, which are the operations of /api/op. */
const OPERATIONS = Object.keys(controlMethods(undefined as never));

test('init made the certificate: the key is 0600, status shows the fingerprint the TLS peer presents', async (t) => {
  const { agent, port, ca } = ui();
  t.is(statSync(join(agent.dataDir, 'ui-key.pem')).mode & 0o777, 0o600);
  const fingerprint = new X509Certificate(ca).fingerprint256;
  t.regex(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const status = await agent.ok<{ remoteUi: { port: number; fingerprint: string } }>('status');
  t.deepEqual(status.remoteUi, { port, fingerprint });
  t.true((await humanShell(agent.dataDir, 'status')).stdout.includes(`remote UI: https on port ${port}, certificate SHA-256 ${fingerprint}`));
  // The peer's certificate, as a browser sees it (verified against the file: its SAN names 127.0.0.1).
  const peer = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', ca, agent: false }, (res) => {
      resolve((res.socket as import('node:tls').TLSSocket).getPeerX509Certificate()!.fingerprint256);
      res.resume();
    });
    req.on('error', reject).end();
  });
  t.is(peer, fingerprint);
});

test('every operation, the event stream, logout and the files refuse a request without a session: 401 AUTH_REQUIRED', async (t) => {
  const anon = ui().client();
  t.true(OPERATIONS.length > 20);
  const routes: [string, string][] = [
    ...OPERATIONS.map((name): [string, string] => ['POST', `/api/op/${name}`]),
    ['POST', '/api/op/no-such-operation'],
    ['GET', '/api/events'],
    ['GET', '/api/session'],
    ['POST', '/api/logout'],
    ['GET', '/api/download/export'],
    ['PUT', '/api/upload/import'],
  ];
  for (const [method, path] of routes) {
    const r = await anon.request(method, path, method === 'GET' ? {} : { json: {}, csrf: 'x' });
    t.is(r.status, 401, `${method} ${path}`);
    t.is(codeOf(r), 'AUTH_REQUIRED', `${method} ${path}`);
  }
  // A made-up cookie is no session either.
  anon.cookie = '__Host-mfpsync-session=forged';
  t.is(codeOf(await anon.op('users.list')), 'AUTH_REQUIRED');
});

test('a change without the CSRF token, or with another session\'s, is refused with 403 CSRF_INVALID and changes nothing', async (t) => {
  const [a, b] = await Promise.all([admin(), admin()]);
  const set = { kind: 'user', id: 'csrf-user', item: 'auto-print', value: true };
  for (const csrf of [null, '', 'wrong', b.csrf!]) {
    const r = await a.op('item.set', set, { csrf });
    t.is(r.status, 403);
    t.is(codeOf(r), 'CSRF_INVALID');
  }
  const list = await a.op('users.list', { search: 'csrf-user' });
  t.deepEqual((list.json as { result: { users: unknown[] } }).result.users, []);
  // With its own token the same request goes through.
  t.is((await a.op('item.set', set)).status, 200);
  t.is((await a.op('users.list', { search: 'csrf-user' }) as { json: { result: { users: unknown[] } } }).json.result.users.length, 1);
});

test('an XSS-shaped device name and user name come back as the same JSON text', async (t) => {
  const c = await admin();
  const status = await c.op('status');
  t.regex(String(status.headers['content-type']), /^application\/json/);
  t.is((status.json as { result: { name: string } }).result.name, XSS);
  t.true(status.text.includes(JSON.stringify(XSS)));
  t.is((await c.op('item.set', { kind: 'user', id: XSS, item: 'auto-print', value: true })).status, 200);
  const list = await c.op('users.list', { search: 'onerror' });
  t.deepEqual((list.json as { result: { users: { id: string }[] } }).result.users.map((u) => u.id), [XSS]);
});

test('an oversized or malformed body is a coded 4xx and changes nothing', async (t) => {
  const c = await admin();
  const big = { kind: 'user', id: 'big-user', item: 'auto-print', value: true, pad: 'x'.repeat(70 * 1024) };
  const tooLarge = await c.op('item.set', big);
  t.is(tooLarge.status, 413);
  t.is(codeOf(tooLarge), 'REQUEST_TOO_LARGE');
  const bodies: [string, Record<string, string>][] = [
    ['{"kind":"user","id":"big-user",', { 'content-type': 'application/json' }],
    ['[1,2]', { 'content-type': 'application/json' }],
    ['"text"', { 'content-type': 'application/json' }],
    ['kind=user&id=big-user', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['{"kind":"user","id":"big-user","item":"auto-print","value":true}', { 'content-type': 'text/plain' }],
  ];
  for (const [body, headers] of bodies) {
    const r = await c.request('POST', '/api/op/item.set', { body, headers });
    t.is(r.status, 400, body);
    t.is(codeOf(r), 'REQUEST_MALFORMED', body);
  }
  for (const json of [{ user: 'admin', password: 'ui-pw', extra: 1 }, { user: 1, password: 'ui-pw' }, { user: 'admin' }]) {
    const login = await ui().client().request('POST', '/api/login', { json });
    t.is(codeOf(login), 'REQUEST_MALFORMED', JSON.stringify(json));
    t.is(login.headers['set-cookie'], undefined);
  }
  t.deepEqual((await c.op('users.list', { search: 'big-user' }) as { json: { result: { users: unknown[] } } }).json.result.users, []);
});

test('the session cookie is HttpOnly, Secure, SameSite=Strict; pages and API carry the security headers', async (t) => {
  const c = ui().client();
  const login = await c.login('admin', 'ui-pw');
  const cookie = login.headers['set-cookie']![0]!;
  t.regex(cookie, /^__Host-mfpsync-session=[A-Za-z0-9_-]{43};/);
  for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) t.true(cookie.split('; ').includes(attribute), attribute);
  t.false(/Domain=/i.test(cookie));
  for (const r of [login, await c.request('GET', '/'), await c.request('GET', '/api/session'), await ui().client().request('GET', '/api/session')]) {
    const csp = String(r.headers['content-security-policy']);
    t.true(csp.includes("script-src 'self'"), csp);
    t.true(csp.includes("frame-ancestors 'none'"), csp);
    t.false(csp.includes('unsafe-inline'));
    t.is(r.headers['x-content-type-options'], 'nosniff');
    t.regex(String(r.headers['strict-transport-security']), /max-age=\d{7,}/);
    t.is(r.headers['x-frame-options'], 'DENY');
    t.is(r.headers['cache-control'], 'no-store');
  }
});

test('the session answers the language of Accept-Language: pl or en', async (t) => {
  const c = await admin();
  for (const [header, lang] of [['pl-PL,pl;q=0.9,en;q=0.8', 'pl'], ['en-GB,pl;q=0.5', 'en'], ['de,fr;q=0.9', 'en'], ['de, pl;q=0.2, en;q=0.1', 'pl'], ['', 'en']] as const) {
    const r = await c.request('GET', '/api/session', { headers: { 'accept-language': header } });
    t.like(r.json, { user: 'admin', csrf: c.csrf, lang }, header);
  }
  const anon = await ui().client().request('GET', '/api/session', { headers: { 'accept-language': 'pl' } });
  t.like(anon.json, { lang: 'pl', error: { code: 'AUTH_REQUIRED' } });
});

test('plain HTTP to the port gets no content', async (t) => {
  const received = await new Promise<Buffer>((resolve, reject) => {
    const s = connect(ui().port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  t.false(received.toString('latin1').includes('HTTP/'));
  t.false(received.toString('latin1').includes('<'));
});

test('operations run as the shell\'s: a result, or the operation\'s own code', async (t) => {
  const c = await admin();
  const status = await c.op('status');
  t.is(status.status, 200);
  t.like(status.json, { result: { role: 'standalone', remoteUi: { port: ui().port } } });
  const unknown = await c.op('no-such-operation');
  t.is(unknown.status, 400);
  t.is(codeOf(unknown), 'INVALID_ARGUMENT');
  const wrong = await c.op('item.set', { kind: 'nothing' });
  t.is(codeOf(wrong), 'INVALID_ARGUMENT');
  const missing = await c.op('devices.remove', { id: 'no-such-device' });
  t.true(missing.status >= 400 && missing.status < 500);
  t.truthy(codeOf(missing));
});

test('export writes the Remote UI\'s own file, offered for download; an upload is what import reads; no path on the machine', async (t) => {
  const c = await admin();
  await c.op('item.set', { kind: 'user', id: 'export-user', item: 'auto-print', value: true });
  const elsewhere = join(ui().agent.dataDir, '..', 'elsewhere.bin');
  const exported = await c.op('export', { path: elsewhere });
  t.is(exported.status, 200, exported.text);
  t.like(exported.json, { download: '/api/download/export' });
  t.false(existsSync(elsewhere));
  const download = await new Promise<{ status: number; disposition: string; bytes: Buffer }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ui().port, path: '/api/download/export', ca: ui().ca, agent: false, headers: { cookie: c.cookie! } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, disposition: String(res.headers['content-disposition']), bytes: Buffer.concat(chunks) }));
    });
    req.on('error', reject).end();
  });
  t.is(download.status, 200);
  t.regex(download.disposition, /^attachment; filename="mfpsync-export-/);
  t.is(download.bytes.length, (exported.json as { result: { bytes: number } }).result.bytes);

  t.is(codeOf(await c.request('PUT', '/api/upload/import', { body: download.bytes, headers: { 'content-type': 'application/octet-stream' }, csrf: null })), 'CSRF_INVALID');
  const upload = await c.request('PUT', '/api/upload/import', { body: download.bytes, headers: { 'content-type': 'application/octet-stream' } });
  t.deepEqual(upload.json, { bytes: download.bytes.length });
  const imported = await c.op('import', { path: '/etc/passwd' });
  t.is(imported.status, 200, imported.text);

  for (const [name, params] of [['backup', { to: '/tmp' }], ['restore', { from: '/etc/passwd' }], ['backup', { to: 'relative/dir' }]] as const) {
    const r = await c.op(name, params);
    t.is(codeOf(r), 'INVALID_ARGUMENT', `${name} ${JSON.stringify(params)}`);
    t.regex((r.json as { error: { message: string } }).error.message, /"device" or smb:/);
  }
});

test('the event stream carries the agent\'s events to a session, and ends with it', async (t) => {
  const c = await admin();
  const stream = await new Promise<{ type: string; lines: string[]; next: (pred: (l: string) => boolean) => Promise<string>; ended: Promise<void> }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: ui().port, path: '/api/events', ca: ui().ca, agent: false, headers: { cookie: c.cookie! } }, (res) => {
      const lines: string[] = [];
      const waiters: { pred: (l: string) => boolean; done: (l: string) => void }[] = [];
      let buffer = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        buffer += d;
        const parts = buffer.split('\n');
        buffer = parts.pop()!;
        for (const l of parts) {
          lines.push(l);
          for (const w of waiters.filter((x) => x.pred(l))) {
            waiters.splice(waiters.indexOf(w), 1);
            w.done(l);
          }
        }
      });
      const ended = new Promise<void>((r) => res.on('close', () => r()));
      resolve({
        type: String(res.headers['content-type']),
        lines,
        next: (pred) => new Promise((done) => {
          const seen = lines.find(pred);
          if (seen) done(seen);
          else waiters.push({ pred, done });
        }),
        ended,
      });
    });
    req.on('error', reject).end();
  });
  t.regex(stream.type, /^text\/event-stream/);
  await stream.next((l) => l === ': ok');
  await c.op('item.set', { kind: 'user', id: 'event-user', item: 'auto-print', value: true });
  const line = await stream.next((l) => l.startsWith('data: ') && l.includes('event-user'));
  t.like(JSON.parse(line.slice(6)), { event: 'item-changed', kind: 'user', id: 'event-user', item: 'auto-print', source: 'local' });
  t.is((await c.request('POST', '/api/logout')).status, 200);
  await stream.ended;
  t.is(codeOf(await c.request('GET', '/api/session')), 'AUTH_REQUIRED');
});
