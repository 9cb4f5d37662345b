/**
 * Whole-file writes that a crash or a full disk cannot leave half done: the export file and the
 * server's backup file are written here. Errors are Node's own (with their `code`: ENOENT, ENOSPC,
 * EDQUOT, EACCES …), so that each caller maps them to its own coded error.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a file atomically: a temporary file in the same directory (mode 0600: these files hold
 * personal data or key material), fsync'ed, renamed over the target, and the directory fsync'ed.
 * A failure leaves no temporary file and the target as it was, and rethrows the Node error as it is.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // The rename is done; a file system without directory fsync still has the file.
  }
}
