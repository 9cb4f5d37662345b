/**
 * The package as a controller installs it (README "On a controller"): `npm pack`'s tarball installed
 * into an empty prefix runs `mfpsync --help`, and the systemd unit in deploy/ passes `systemd-analyze
 * verify` against that installed binary.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { MFPSYNC } from '../helpers/agents.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const ROOT = join(MFPSYNC, '../../..');

test('the packed tarball installs into an empty prefix, and its mfpsync runs; the systemd unit verifies', async (t) => {
  t.timeout(180_000);
  const dir = tempDir(t);
  // Packed from the build the suite runs on (pretest compiled it): no second compile.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
  const [{ filename, files }] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  const paths = files.map((f) => f.path);
  t.true(paths.includes('dist/tools/mfpsync.cjs'), 'the shipped shell, bundled');
  t.true(paths.includes('deploy/mfpsync.service'));
  t.true(paths.includes('dist/ui/index.html'), 'the Remote UI\'s pages');
  t.false(paths.some((p) => p.startsWith('dist/test/') || p.startsWith('test/')), 'no tests in the package');
  const prefix = join(dir, 'prefix');
  await run('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, filename)], { cwd: dir });
  const bin = join(prefix, 'bin', 'mfpsync');
  const help = await run(bin, ['--help']);
  t.regex(help.stdout, /^Usage: mfpsync \[options\] \[command\]/);
  t.regex(help.stdout, /role/);
  // The unit, pointed at the installed binary, is a valid unit for systemd.
  const verify = await run('sh', ['-c', 'command -v systemd-analyze']).then(() => true, () => false);
  if (!verify) {
    t.log('systemd-analyze is not here: the unit is not verified');
    return;
  }
  const unit = join(dir, 'mfpsync.service');
  writeFileSync(unit, readFileSync(join(ROOT, 'deploy/mfpsync.service'), 'utf8').replace('/usr/local/bin/mfpsync', bin));
  t.true(existsSync(unit));
  const checked = await run('systemd-analyze', ['verify', unit]).then((r) => r, (err: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: err.stdout ?? '', stderr: `${err.stderr ?? ''} (exit ${err.code})` }));
  t.is(checked.stderr.trim(), '', 'systemd-analyze verify found nothing to say');
});
