/**
 * End to end (SPEC §3.5, [Allow custom settings to be applied during operation]): a client's setting is
 * changed while it runs, through the shell; a logged-in user's language changed on another machine then
 * arrives with `applyNow: false`, and the setting outlives a restart (the run option, when given, wins).
 */
import test from 'ava';
import { AgentProcess, joinClient, startServer } from '../helpers/agents.js';

test('apply during login: next-login defers a logged-in user\'s language, is kept across a restart, and --apply-during-login overrides it', async (t) => {
  const { port } = await startServer(t);
  const [a, b] = await Promise.all([AgentProcess.spawn(t, { name: 'A' }), AgentProcess.spawn(t, { name: 'B' })]);
  await Promise.all([joinClient(a, port), joinClient(b, port)]);
  t.deepEqual(await a.ok('settings', 'apply-during-login'), { applyDuringLogin: 'immediate' });
  const bad = await a.sh('settings', 'apply-during-login', 'later');
  t.is(bad.code, 2);
  t.regex(bad.stderr, /^error USAGE: /);

  t.deepEqual(await a.ok('settings', 'apply-during-login', 'next-login'), { applyDuringLogin: 'next-login' });
  await a.ok('login', 'mia');
  let mark = a.events.length;
  await b.ok('user', 'set', 'mia', 'language', '{"display":"pl"}');
  t.like(await a.waitRemote('mia', 'language', mark), { applyNow: false });

  await a.kill('SIGTERM');
  await a.start();
  t.deepEqual(await a.ok('settings', 'apply-during-login'), { applyDuringLogin: 'next-login' }, 'kept across a restart');
  await a.ok('login', 'mia');
  mark = a.events.length;
  await b.ok('user', 'set', 'mia', 'language', '{"display":"de"}');
  t.like(await a.waitRemote('mia', 'language', mark), { applyNow: false });

  // The run option, given, sets it at start.
  await a.kill('SIGTERM');
  a.options.runArgs = ['--apply-during-login', 'immediate'];
  await a.start();
  t.deepEqual(await a.ok('settings', 'apply-during-login'), { applyDuringLogin: 'immediate' });
  await a.ok('login', 'mia');
  mark = a.events.length;
  await b.ok('user', 'set', 'mia', 'language', '{"display":"fr"}');
  t.like(await a.waitRemote('mia', 'language', mark), { applyNow: true });
});
