/**
 * The Remote UI's login through real HTTPS against one agent process: a wrong password, the lockout
 * of the agent's one limiter (the admission's) and its concurrency rule, logout, and session expiry
 * (the agent runs with a 2.5-second idle time instead of 30 minutes). The lockout tests log in from
 * other loopback addresses and for other accounts, so that the admin's logins here are not locked.
 */
import test from 'ava';
import { codeOf, sharedUiAgent } from '../helpers/remote-ui.js';

const IDLE_MS = 2500;
const ui = sharedUiAgent(test, { name: 'login-ui', adminPassword: 'ui-pw', uiArgs: ['--ui-idle-ms', String(IDLE_MS)] });

test('a wrong password is 401 AUTH_INCORRECT and sets no cookie', async (t) => {
  const c = ui().client({ localAddress: '127.0.0.4' });
  for (const [user, password] of [['admin', 'wrong'], ['someone', 'ui-pw'], ['admin', '']]) {
    const r = await c.login(user!, password!);
    t.is(r.status, 401);
    t.is(codeOf(r), 'AUTH_INCORRECT');
    t.is(r.headers['set-cookie'], undefined);
  }
  t.is((await c.login('admin', 'ui-pw')).status, 200, 'a right password clears the failures');
});

test('five wrong passwords lock the account and the address: AUTH_LOCKED (429), the right password too', async (t) => {
  const c = ui().client({ localAddress: '127.0.0.2' });
  for (let i = 0; i < 5; i++) t.is(codeOf(await c.login('lock-me', `wrong-${i}`)), 'AUTH_INCORRECT');
  const locked = await c.login('lock-me', 'wrong-5');
  t.is(locked.status, 429);
  t.is(codeOf(locked), 'AUTH_LOCKED');
  t.regex((locked.json as { error: { message: string } }).error.message, /retry after \d{4}-/);
  // The address is locked: even the administrator's right password is not checked from it.
  t.is(codeOf(await c.login('admin', 'ui-pw')), 'AUTH_LOCKED');
  // Another address logs in.
  t.is((await ui().client().login('admin', 'ui-pw')).status, 200);
});

test('sixteen wrong passwords at once: five are checked, the others are AUTH_LOCKED', async (t) => {
  const c = ui().client({ localAddress: '127.0.0.3' });
  const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => c.login('parallel', `wrong-${i}`)));
  const codes = answers.map(codeOf);
  t.is(codes.filter((x) => x === 'AUTH_INCORRECT').length, 5, codes.join());
  t.is(codes.filter((x) => x === 'AUTH_LOCKED').length, 11, codes.join());
  // The agent's log counts the same: five failures of this account were checked.
  const log = await ui().agent.ok<{ entries: { code: string; message: string }[] }>('log', '--level', 'error');
  t.is(log.entries.filter((e) => e.code === 'AUTH_INCORRECT' && e.message.includes('"parallel"')).length, 5);
});

test('logout needs the CSRF token, then ends the session', async (t) => {
  const c = ui().client();
  await c.login('admin', 'ui-pw');
  t.is(codeOf(await c.request('POST', '/api/logout', { csrf: null })), 'CSRF_INVALID');
  t.is((await c.request('GET', '/api/session')).status, 200);
  const out = await c.request('POST', '/api/logout');
  t.deepEqual(out.json, { loggedOut: true });
  t.regex(String(out.headers['set-cookie']), /^__Host-mfpsync-session=;/);
  t.is(codeOf(await c.request('GET', '/api/session')), 'AUTH_REQUIRED');
  t.is(codeOf(await c.op('status')), 'AUTH_REQUIRED');
});

test('a session idle longer than the idle time is gone: 401 AUTH_REQUIRED', async (t) => {
  const c = ui().client();
  await c.login('admin', 'ui-pw');
  t.is((await c.op('status')).status, 200);
  // Time must pass here: the agent's clock is the system's (no event marks an idle session's end).
  await new Promise((r) => setTimeout(r, IDLE_MS + 300));
  const r = await c.op('status');
  t.is(r.status, 401);
  t.is(codeOf(r), 'AUTH_REQUIRED');
  t.is(codeOf(await c.request('GET', '/api/session')), 'AUTH_REQUIRED');
  // A new login opens a new session.
  t.is((await c.login('admin', 'ui-pw')).status, 200);
  t.is((await c.op('status')).status, 200);
});
