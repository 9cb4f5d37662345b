/** The simulator's view: pure functions from a snapshot (or the summary) to the text on screen. */
import test from 'ava';
import type { SimMachine, SimSnapshot, SimSummary } from '../../tools/sim/snapshot.js';
import { formatBytes, formatElapsed, progressBar, renderFrame, renderSummary } from '../../tools/sim/view.js';

const machine = (m: Partial<SimMachine> & Pick<SimMachine, 'name'>): SimMachine => ({
  role: 'client', state: 'synchronized', lag: 0, changesPerSec: 0, asleep: false, blockedBy: null, users: 0, progress: null, error: null, ...m,
});

const snapshot: SimSnapshot = {
  type: 'snapshot',
  phase: 'joining',
  elapsedMs: 83_400,
  devices: 4,
  users: 200,
  rate: 20,
  seed: 7,
  dir: '/tmp/mfpsync-sim-x',
  machines: [
    machine({ name: 'server', role: 'server', state: 'serving', lag: null, changesPerSec: 18.25, blockedBy: 2, users: 200 }),
    machine({ name: 'client-1', lag: 3, changesPerSec: 12, users: 101 }),
    machine({ name: 'client-2', state: 'joining', lag: null, users: 112, progress: { phase: 'receiving', done: 56, total: 112, bytes: 1_572_864 } }),
    machine({ name: 'client-3', state: 'failed', lag: null, users: 0, error: 'AUTH_INCORRECT: administrator user id or password incorrect' }),
  ],
  totals: { edits: 240, logins: 24, sleeps: 2, propagated: 410, p50Ms: 2.7, p95Ms: 5.89, conflicts: 1, errors: 1 },
};

test('a frame: header, one aligned row per machine, a progress bar while joining, totals, failures', (t) => {
  t.is(
    renderFrame(snapshot),
    [
      'mfpsync sim · 4 machines (1 server, 3 clients) · 200 users · 20 edits/s · seed 7   joining 1:23',
      '',
      'MACHINE   ROLE    STATE         LAG  CHANGES/S  USERS  SLEEP',
      'server    server  serving         -       18.3    200  deep sleep blocked (2)',
      'client-1  client  synchronized    3       12.0    101  awake',
      'client-2  client  joining         -        0.0    112  awake',
      '                  [##########----------] 56/112 users received, 1.5 MB',
      'client-3  client  failed          -        0.0      0  awake',
      '',
      'edits 240 · logins 24 · sleeps 2 · propagated 410 · propagation p50 2.70 ms p95 5.89 ms · conflicts 1 · errors 1',
      '! client-3: AUTH_INCORRECT: administrator user id or password incorrect',
      '',
      'Ctrl-C stops',
    ].join('\n'),
  );
});

test('lines are cut to the terminal width (a wrapped line would break the redraw)', (t) => {
  const lines = renderFrame(snapshot, 40).split('\n');
  t.true(lines.every((l) => l.length <= 40));
  t.is(lines[0], 'mfpsync sim · 4 machines (1 server, 3 c…');
});

test('a sleeping client, a server nobody blocks, and the last frame', (t) => {
  const frame = renderFrame({
    ...snapshot,
    phase: 'done',
    machines: [machine({ name: 'server', role: 'server', state: 'serving', lag: null, blockedBy: 0 }), machine({ name: 'client-1', state: 'asleep', asleep: true, lag: 14 })],
    totals: { ...snapshot.totals, p50Ms: null, p95Ms: null },
  });
  t.regex(frame, /^server +server +serving +- +0\.0 +0 +may deep-sleep$/m);
  t.regex(frame, /^client-1 +client +asleep +14 +0\.0 +0 +asleep$/m);
  t.regex(frame, /propagation p50 - p95 -/);
  t.regex(frame, /stopped: every agent closed$/);
});

test('the summary paragraph says how it ended, what happened, and where the data went', (t) => {
  const summary: SimSummary = {
    type: 'summary', elapsedMs: 12_345, stoppedBy: 'SIGINT', devices: 4, users: 200, seed: 7, totals: snapshot.totals,
    settled: false, maxLag: 5, errors: ['client-3: AUTH_INCORRECT: wrong'], dir: '/tmp/mfpsync-sim-x', dirRemoved: true,
  };
  t.is(
    renderSummary(summary),
    'Simulated 4 machines (1 server, 3 clients) with 200 users for 12.3 s (seed 7), stopped by Ctrl-C: 240 edits and 24 logins on the clients, ' +
      '410 changes propagated to other clients (edit to remote item-changed p50 2.70 ms, p95 5.89 ms), 2 sleep/wake cycles, 1 conflict; ' +
      'the clients did not all settle (largest cursor lag 5). 1 error: client-3: AUTH_INCORRECT: wrong. Temporary data in /tmp/mfpsync-sim-x removed.',
  );
  t.regex(renderSummary({ ...summary, settled: true, errors: [], dirRemoved: false }), /no cursor lag\. Temporary data in \/tmp\/mfpsync-sim-x could NOT be removed/);
});

test('small formatters', (t) => {
  t.is(progressBar(0.5, 10), '[#####-----]');
  t.is(progressBar(2, 4), '[####]');
  t.is(progressBar(Number.NaN, 4), '[----]');
  t.is(formatElapsed(59_999), '0:59');
  t.is(formatElapsed(3_725_000), '1:02:05');
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(2048), '2.0 KB');
});
