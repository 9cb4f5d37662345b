/**
 * Small tmpfs file systems for disk-full faults (the tests and the soak): a real file system that runs
 * out of space at a known size, and a filler file that fills it. Mounting needs root (CAP_SYS_ADMIN).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Mounts a tmpfs of `sizeBytes` on the existing directory `dir`; throws, saying why, where it cannot. */
export async function mountTmpfs(dir: string, sizeBytes: number): Promise<void> {
  if (!Number.isInteger(sizeBytes) || sizeBytes <= 0) throw new TypeError('sizeBytes must be a positive integer');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
  } catch (err) {
    throw new Error(((err as { stderr?: string }).stderr ?? '').trim() || (err as Error).message, { cause: err });
  }
}

/** Unmounts a tmpfs lazily, so that a process still holding a file in it cannot block the caller. */
export async function unmountTmpfs(dir: string): Promise<void> {
  await run('umount', ['-l', dir]);
}

/** Why a tmpfs cannot be mounted here (not root, no CAP_SYS_ADMIN), or undefined when it can. */
export async function tmpfsUnavailable(): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'mfp-probe-'));
  try {
    await mountTmpfs(dir, 64 * 1024);
    await unmountTmpfs(dir);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
