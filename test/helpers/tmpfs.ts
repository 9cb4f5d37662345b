/** A small tmpfs for disk-full tests: a real file system that runs out of space at a known size. */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { tempDir } from './tmp.js';

const run = promisify(execFile);

/**
 * Mounts a fresh tmpfs of `sizeBytes` on a temp dir and returns its path; it is unmounted (lazily, so
 * a server still holding it cannot block the teardown) when the test ends. Where mounting is
 * impossible (not root, no CAP_SYS_ADMIN) logs why, counts one passing assertion (ava wants one) and
 * returns undefined: `const dir = await mountTmpfs(t, …); if (!dir) return;`.
 */
export async function mountTmpfs(t: ExecutionContext, sizeBytes: number): Promise<string | undefined> {
  if (!Number.isInteger(sizeBytes) || sizeBytes <= 0) throw new TypeError('sizeBytes must be a positive integer');
  const dir = tempDir(t, 'mfp-tmpfs-');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
  } catch (err) {
    const why = ((err as { stderr?: string }).stderr ?? '').trim() || (err as Error).message;
    t.log(`cannot mount tmpfs here (${why}): skipping the disk-full case`);
    t.pass();
    return undefined;
  }
  // Registered after tempDir's removal, so it runs before it (ava runs teardowns last-in, first-out).
  t.teardown(async () => {
    await run('umount', ['-l', dir]);
  });
  return dir;
}

/**
 * Fills the file system holding `dir` with a filler file in it until ENOSPC; returns the file's path
 * (unlink it to free the space).
 */
export async function fillUp(dir: string): Promise<string> {
  const path = join(dir, 'filler');
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) await fh.write(chunk);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return path;
}
