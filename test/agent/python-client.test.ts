/**
 * The Python example (examples/python/mfpsync_client.py, standard library only) drives a real agent
 * process through the control socket: status, users.list, a coded refusal, and an item-changed event
 * that the shell's change causes, received through events.subscribe.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { AgentProcess } from '../helpers/agents.js';

const SCRIPT = fileURLToPath(new URL('../../../examples/python/mfpsync_client.py', import.meta.url));

test('the Python client calls status and users.list, and prints the item-changed event a shell change causes', async (t) => {
  const agent = await AgentProcess.spawn(t, { name: 'py' });
  await agent.ok('user', 'set', 'alice', 'language', '{"display":"en"}');
  const py = spawn('python3', [SCRIPT, join(agent.dataDir, 'control.sock'), '--timeout', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    py.kill();
  });
  let stderr = '';
  py.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => py.once('exit', (code) => resolve(code)));
  const lines: Record<string, unknown>[] = [];
  const subscribed = new Promise<void>((resolve) => {
    createInterface({ input: py.stdout }).on('line', (line) => {
      const m = JSON.parse(line) as Record<string, unknown>;
      lines.push(m);
      if ('subscribed' in m) resolve();
    });
  });
  const early = exited.then((code) => {
    throw new Error(`the script exited (${code}) before subscribing: ${stderr}`);
  });
  await Promise.race([subscribed, early]);
  early.catch(() => undefined);
  await agent.ok('user', 'set', 'bob', 'language', '{"display":"pl"}');
  t.is(await exited, 0, stderr);
  t.deepEqual(lines.slice(0, 4), [
    { status: { name: 'py', role: 'standalone', health: 'green' } },
    { users: ['alice'] },
    { refused: 'INVALID_ARGUMENT' },
    { subscribed: ['item-changed'] },
  ]);
  t.deepEqual(lines[4], { event: 'item-changed', kind: 'user', id: 'bob', item: 'language', source: 'local', applyNow: true });
});
