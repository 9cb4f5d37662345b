/** The README is part of the interface: every error code and shell command must be documented there. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ERROR_CODES } from '../protocol/errors.js';
import { EXIT_CODES } from '../tools/shell.js';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

test('every error code is in the README error table', (t) => {
  const missing = Object.keys(ERROR_CODES).filter((code) => !readme.includes(`| \`${code}\` |`));
  t.deepEqual(missing, []);
});

test('the README exit-code table matches the shell', (t) => {
  for (const [code, exit] of Object.entries(EXIT_CODES)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| ${exit} |`));
    t.truthy(row?.includes(`\`${code}\``), `${code} → exit ${exit}`);
  }
});

test('every shell command is in the README', (t) => {
  for (const cmd of ['init', 'run', 'status', 'role set', 'login USER', 'logout USER', 'user get', 'user set', 'group get', 'group set', 'shared get', 'users list', 'users delete', 'devices list', 'devices remove', 'sharing list', 'sharing set', 'export --out', 'export prepare', 'import FILE', 'conflicts list', 'log [', 'power status', 'power sleep', 'power wake', 'sim [']) {
    t.true(readme.includes(`\`${cmd}`), cmd);
  }
});
