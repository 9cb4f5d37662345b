/**
 * Everything the benchmark creates — temp folders, child processes, agents, sockets — is registered
 * here as it is created and released in reverse order, on success, on error and on SIGINT/SIGTERM.
 * A figure opens a scope of its own so its agents stop before the next figure measures anything.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

type Release = () => Promise<void> | void;

/** A LIFO list of things to release. */
export class Cleanup {
  #stack: { what: string; release: Release }[] = [];
  #done = false;

  constructor(parent?: Cleanup) {
    parent?.defer('scope', async () => {
      const errors = await this.run();
      if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('; '));
    });
  }

  /** Registers a release; it runs once, at the latest when the outermost scope ends. */
  defer(what: string, release: Release): void {
    if (this.#done) throw new TypeError(`cleanup scope already released (${what})`);
    this.#stack.push({ what, release });
  }

  /** A child scope, released with this one at the latest. */
  scope(): Cleanup {
    return new Cleanup(this);
  }

  /** Creates a temp folder under `parent` that is removed on release. */
  tempDir(parent: string, prefix: string): string {
    const dir = mkdtempSync(join(parent, prefix));
    this.defer(`rm ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** Releases everything, newest first; errors are collected, never stop the rest. */
  async run(): Promise<Error[]> {
    if (this.#done) return [];
    this.#done = true;
    const errors: Error[] = [];
    while (this.#stack.length > 0) {
      const { what, release } = this.#stack.pop()!;
      try {
        await release();
      } catch (err) {
        errors.push(new Error(`cleanup of ${what} failed: ${(err as Error).message}`, { cause: err }));
      }
    }
    return errors;
  }
}
