/**
 * `status` health: every rule of the pure judgement, then the states a technician meets on real agents
 * (a refused client, a client offline with queued changes).
 */
import test from 'ava';
import { assessHealth, type HealthFacts } from '../../agent/health.js';
import { admit, openAgent, syncState } from '../helpers/inprocess.js';

const NOW = Date.UTC(2026, 5, 1);
const live = { state: 'live' as const, server: '10.0.0.5:8443', queued: 0, skewMs: 12 };

const CASES: [string, HealthFacts, 'green' | 'yellow' | 'red', string[]][] = [
  ['a live client', { now: NOW, client: live }, 'green', []],
  ['a server with near-zero skews', { now: NOW, clients: [{ deviceId: 'd1', name: 'A', skewMs: -800 }] }, 'green', []],
  ['a sleeping client', { now: NOW, client: { ...live, state: 'sleeping', queued: 2 } }, 'green', []],
  ['a standalone machine', { now: NOW, users: [{ store: 'local', count: 10, max: 1000 }] }, 'green', []],
  ['a clock before 2024', { now: Date.UTC(2001, 0, 1) }, 'red', ['CLOCK_NOT_SET']],
  ['a store that cannot write', { now: NOW, storeErrors: [{ store: 'group', code: 'STORE_WRITE_FAILED', message: 'ENOSPC' }] }, 'red', ['STORE_WRITE_FAILED']],
  [
    'a client refused by the server',
    { now: NOW, client: { ...live, state: 'refused', error: { code: 'DEVICE_REMOVED', message: 'removed' } } },
    'red',
    ['DEVICE_REMOVED'],
  ],
  ['a client offline with 3 queued changes', { now: NOW, client: { ...live, state: 'offline', queued: 3 } }, 'yellow', ['SERVER_UNREACHABLE']],
  ['a client reconnecting', { now: NOW, client: { ...live, state: 'connecting' } }, 'yellow', ['SERVER_UNREACHABLE']],
  ['a client whose clock is 61 s ahead', { now: NOW, client: { ...live, skewMs: 61_000 } }, 'yellow', ['CLOCK_SKEW']],
  ['a client skewed exactly 60 s', { now: NOW, client: { ...live, skewMs: -60_000 } }, 'green', []],
  ['a server with one client 2 minutes behind', { now: NOW, clients: [{ deviceId: 'd1', name: 'A', skewMs: 0 }, { deviceId: 'd2', name: 'B', skewMs: -120_000 }] }, 'yellow', ['CLOCK_SKEW']],
  ['900 of 1000 users', { now: NOW, users: [{ store: 'group', count: 900, max: 1000 }] }, 'yellow', ['USER_LIMIT_NEAR']],
  ['899 of 1000 users', { now: NOW, users: [{ store: 'group', count: 899, max: 1000 }] }, 'green', []],
  [
    'a server whose full group refused a device\'s new users',
    { now: NOW, users: [{ store: 'group', count: 1000, max: 1000 }], crowdedOut: [{ deviceId: 'd3', name: 'C', refused: 7, since: NOW - 5000, users: ['x1', 'x2'] }] },
    'red',
    ['USER_LIMIT_REACHED', 'USER_LIMIT_NEAR'],
  ],
  [
    'everything at once: red reasons come first',
    {
      now: NOW,
      client: { ...live, state: 'offline', queued: 1, skewMs: 90_000 },
      storeErrors: [{ store: 'local', code: 'STORE_WRITE_FAILED', message: 'EIO' }],
      users: [{ store: 'local', count: 1000, max: 1000 }],
    },
    'red',
    ['STORE_WRITE_FAILED', 'SERVER_UNREACHABLE', 'CLOCK_SKEW', 'USER_LIMIT_NEAR'],
  ],
];

for (const [title, facts, health, codes] of CASES) {
  test(`health: ${title} is ${health}`, (t) => {
    const h = assessHealth(facts);
    t.is(h.health, health);
    t.deepEqual(h.reasons.map((r) => r.code), codes);
    for (const r of h.reasons) t.true(r.message.length > 0);
  });
}

test('health reasons say what a technician needs: the queue, the server, the skew', (t) => {
  t.regex(assessHealth({ now: NOW, client: { ...live, state: 'offline', queued: 3, error: { code: 'ADDRESS_INCORRECT', message: 'x' } } }).reasons[0]!.message,
    /^offline: cannot reach the server 10\.0\.0\.5:8443 \(ADDRESS_INCORRECT\); 3 change\(s\) queued$/);
  t.regex(assessHealth({ now: NOW, clients: [{ deviceId: 'd2', name: 'B', skewMs: -120_000 }] }).reasons[0]!.message, /^the clock of B \(d2\) is 120 s behind the server's$/);
  t.regex(assessHealth({ now: NOW, client: { ...live, state: 'refused', error: { code: 'AUTH_INCORRECT', message: 'bad password' } } }).reasons[0]!.message,
    /^refused by the server 10\.0\.0\.5:8443: bad password$/);
  t.regex(assessHealth({ now: NOW, crowdedOut: [{ deviceId: 'd3', name: 'C', refused: 7, since: NOW, users: ['x1', 'x2'] }] }).reasons[0]!.message,
    /^C \(d3\) tried to add 7 new user\(s\) since .* \("x1", "x2", …\) while every user of the full group was used within the last day/);
});

test('status: green when live, red when the server refused the client, yellow when offline and queueing', async (t) => {
  const server = await openAgent(t, 'server');
  const a = await openAgent(t, 'A');
  const b = await openAgent(t, 'B');
  await server.setRole('server');
  await admit(a, server.port);
  await admit(b, server.port);
  for (const x of [server, a, b]) t.like(x.status(), { health: 'green', healthReasons: [] });

  const refused = syncState(b, 'refused');
  await server.removeDevice(b.identity.deviceId);
  await refused;
  t.like(b.status(), { health: 'red', healthReasons: [{ level: 'red', code: 'DEVICE_REMOVED' }] });

  const offline = syncState(a, 'offline');
  await server.setRole('standalone', { force: true });
  await offline;
  await a.setItem('user', 'ann', 'home', { tiles: 1 });
  await a.setItem('user', 'ann', 'auto-print', true);
  const s = a.status();
  t.is(s.health, 'yellow');
  t.is(s.healthReasons.length, 1);
  t.like(s.healthReasons[0], { level: 'yellow', code: 'SERVER_UNREACHABLE' });
  t.regex(s.healthReasons[0]!.message, /; 2 change\(s\) queued$/);
  // The existing fields are all still there.
  t.like(s, { role: 'client', client: { queued: 2 }, localUsers: 1 });
});
