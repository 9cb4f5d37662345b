/**
 * The Remote UI as the library's startDaemon runs it (in process): a data directory made without a
 * certificate (as before the Remote UI) gets one at the first start; `uiPort: 0` starts none; a port
 * in use refuses the start and leaves nothing running; stop closes the port.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { initDataDir } from '../../agent/config.js';
import { startDaemon } from '../../agent/daemon.js';
import { createLogger } from '../../agent/logger.js';
import { fingerprintOfPem } from '../../agent/remote-ui/certificate.js';
import { freePort } from '../../tools/fleet.js';
import { tempDir } from '../helpers/tmp.js';

const logger = createLogger({ level: 'silent' });

/** GET /api/session with the given CA: its status, or the connection's error code. */
function session(port: number, ca: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/session', ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

test('a data directory without a certificate gets one at the first start; stop closes the port', async (t) => {
  const dataDir = join(tempDir(t), 'd');
  initDataDir(dataDir, { name: 'old-dir', adminPassword: 'pw' });
  t.false(existsSync(join(dataDir, 'ui-cert.pem')));
  const uiPort = await freePort();
  const daemon = await startDaemon({ dataDir, host: '127.0.0.1', port: 0, uiPort, logger });
  t.teardown(() => daemon.stop());
  const ca = readFileSync(join(dataDir, 'ui-cert.pem'), 'utf8');
  t.is(statSync(join(dataDir, 'ui-key.pem')).mode & 0o777, 0o600);
  t.deepEqual(daemon.agent.status().remoteUi, { port: uiPort, fingerprint: fingerprintOfPem(ca) });
  t.is(daemon.ui?.fingerprint, fingerprintOfPem(ca));
  t.is(await session(uiPort, ca), 401);
  await daemon.stop();
  t.is(await session(uiPort, ca), 'ECONNREFUSED');
  t.is(daemon.agent.status().remoteUi, undefined);

  // The next start keeps the certificate.
  const again = await startDaemon({ dataDir, host: '127.0.0.1', port: 0, uiPort, logger });
  t.teardown(() => again.stop());
  t.is(again.ui?.fingerprint, fingerprintOfPem(ca));
  await again.stop();
});

test('uiPort 0 starts no Remote UI; a port in use refuses the start and leaves nothing running', async (t) => {
  const dataDir = join(tempDir(t), 'd');
  initDataDir(dataDir, { name: 'no-ui', adminPassword: 'pw' });
  const off = await startDaemon({ dataDir, host: '127.0.0.1', port: 0, uiPort: 0, logger });
  t.is(off.ui, undefined);
  t.is(off.agent.status().remoteUi, undefined);
  t.false(existsSync(join(dataDir, 'ui-cert.pem')));
  await off.stop();

  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const err = await t.throwsAsync(startDaemon({ dataDir, host: '127.0.0.1', port: 0, uiPort: port, logger }));
  t.is((err as { code?: string }).code, 'INVALID_ARGUMENT');
  t.regex(err!.message, /--ui-port/);
  // The control socket and the store were closed: the directory starts again.
  const after = await startDaemon({ dataDir, host: '127.0.0.1', port: 0, uiPort: 0, logger });
  await after.stop();
  t.pass();
});
