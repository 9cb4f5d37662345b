/** Temporary directories for tests: created under the OS temp dir, removed when the test ends. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

/** A fresh directory that is removed after the test (pass or fail). Short paths: Unix sockets live in it. */
export function tempDir(t: ExecutionContext, prefix = 'mfp-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
