/**
 * Racing the group's size. Someone with the administrator account (a careless installer, or a script)
 * sends many first admissions at once: twelve new devices from twelve addresses, their hellos held
 * until every connection has its challenge and released in one burst. What must hold (SPEC §1, §6): a
 * group never has more than 10 machines, the server included — however many admissions are checked
 * at once, the ones past the bound are GROUP_FULL and leave no device record.
 */
import test from 'ava';
import type { MfpError } from '../../protocol/errors.js';
import { MAX_GROUP_DEVICES } from '../../protocol/limits.js';
import { startServer } from '../helpers/agents.js';
import { RawPeer } from '../helpers/raw-peer.js';

test('twelve first admissions at once: nine are admitted, three are GROUP_FULL, the group has ten machines', async (t) => {
  t.timeout(120_000);
  const { server, port } = await startServer(t);
  const peers = await Promise.all(Array.from({ length: 12 }, (_, i) => RawPeer.open({ port, localAddress: `127.0.0.${i + 2}`, timeoutMs: 30_000 })));
  const frames = peers.map((p) => p.buildHello({ admission: { user: 'admin', password: 'secret-pw' } }));
  peers.forEach((p, i) => p.ws.send(frames[i]!.frame));
  const answers = await Promise.all(peers.map((p) => p.receive().then((m) => m.type, (e: MfpError) => e.code)));
  t.log(answers.join(' '));
  const welcomed = answers.filter((a) => a === 'welcome').length;
  t.is(welcomed, MAX_GROUP_DEVICES - 1);
  t.is(answers.filter((a) => a === 'GROUP_FULL').length, 12 - welcomed);
  const { devices } = await server.ok<{ devices: unknown[] }>('devices', 'list');
  t.is(devices.length, MAX_GROUP_DEVICES);
  for (const p of peers) p.terminate();
});
