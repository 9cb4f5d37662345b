/**
 * The shipped shell is one CommonJS file (tools/bundle.ts). Watched from outside the agent's process,
 * through a `--require` hook that records every file Node resolves for it: at start it loads from
 * node_modules only what the bundle leaves out and needs at once (classic-level; msgpackr's native
 * decoder, found from msgpackr's own place), none of the lazy packages; the Remote UI's first request
 * loads Fastify and is answered with the pages the bundle found from the compiled module's place.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import test from 'ava';
import { AgentProcess, freePort, MFPSYNC } from '../helpers/agents.js';
import { UiClient } from '../helpers/remote-ui.js';
import { tempDir } from '../helpers/tmp.js';

/** A `--require` hook: appends each file Node resolves to `log`. */
function resolveHook(dir: string, log: string): string {
  const hook = join(dir, 'resolved.cjs');
  writeFileSync(
    hook,
    `const M = require('node:module'), fs = require('node:fs');
const resolve = M._resolveFilename;
M._resolveFilename = function (...args) { const f = resolve.apply(this, args); fs.appendFileSync(${JSON.stringify(log)}, f + '\\n'); return f; };
`,
  );
  return hook;
}

/** The packages (node_modules/NAME or node_modules/@scope/NAME) among the resolved files. */
function packages(log: string): Set<string> {
  const names = new Set<string>();
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const m = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(line);
    if (m) names.add(m[1]!.split(sep).join('/'));
  }
  return names;
}

const LAZY = ['fastify', '@fastify/static', 'node-schedule', 'pkijs', 'asn1js', '@sinclair/typebox', 'ws', 'commander', 'pino', 'tweetnacl'];

test('the bundled shell loads only LevelDB and msgpackr\'s native part at start, Fastify at the Remote UI\'s first request', async (t) => {
  t.true(MFPSYNC.endsWith('mfpsync.cjs'), 'the tests run the shipped bundle');
  const dir = tempDir(t);
  const log = join(dir, 'resolved.log');
  writeFileSync(log, '');
  const port = await freePort();
  const agent = await AgentProcess.spawn(t, { name: 'bundled', nodeArgs: ['--require', resolveHook(dir, log)], runArgs: ['--ui-port', String(port)] });
  await agent.ok('role', 'set', 'server');

  const atStart = packages(log);
  t.true(atStart.has('classic-level'), `LevelDB's binding is required from node_modules (resolved: ${[...atStart].join(', ')})`);
  t.true(atStart.has('msgpackr-extract'), 'msgpackr finds its native decoder from its own place');
  // Bundled (ws, commander, pino, tweetnacl) or lazy: none is resolved from node_modules at start.
  for (const name of LAZY) t.false(atStart.has(name), `${name} is not loaded at start`);

  const ui = new UiClient({ port, ca: readFileSync(join(agent.dataDir, 'ui-cert.pem'), 'utf8') });
  const page = await ui.request('GET', '/');
  t.is(page.status, 200);
  t.regex(page.text, /<html/i, 'the Remote UI\'s pages, found from the bundle');
  t.true(packages(log).has('fastify'), 'Fastify is loaded by the first request');
});
