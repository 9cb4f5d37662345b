/** A small tmpfs for disk-full tests: a real file system that runs out of space at a known size. */
import type { ExecutionContext } from 'ava';
import { mountTmpfs as mount, unmountTmpfs } from '../../tools/tmpfs.js';
import { tempDir } from './tmp.js';

export { fillUp } from '../../tools/tmpfs.js';

/**
 * Mounts a fresh tmpfs of `sizeBytes` on a temp dir and returns its path; it is unmounted (lazily, so
 * a server still holding it cannot block the teardown) when the test ends. Where mounting is
 * impossible (not root, no CAP_SYS_ADMIN) logs why, counts one passing assertion (ava wants one) and
 * returns undefined: `const dir = await mountTmpfs(t, …); if (!dir) return;`.
 */
export async function mountTmpfs(t: ExecutionContext, sizeBytes: number): Promise<string | undefined> {
  const dir = tempDir(t, 'mfp-tmpfs-');
  try {
    await mount(dir, sizeBytes);
  } catch (err) {
    if (err instanceof TypeError) throw err;
    t.log(`cannot mount tmpfs here (${(err as Error).message}): skipping the disk-full case`);
    t.pass();
    return undefined;
  }
  // Registered after tempDir's removal, so it runs before it (ava runs teardowns last-in, first-out).
  t.teardown(() => unmountTmpfs(dir));
  return dir;
}
