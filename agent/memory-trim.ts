/**
 * Gives memory back once the agent goes quiet after heavy writing (users loaded, a join, an import).
 * V8 shrinks its heap only after a full collection, and an agent that makes little garbage may go on
 * for minutes without one, holding the peak of the burst: so, once at least `minBytes` have been
 * written to the stores and no batch has been written for `quietMs`, one full collection runs (tens of
 * milliseconds, while nothing else is happening). Nothing runs while the agent stays busy or idle.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** The collector: the one `--expose-gc` gives, else enabled through the V8 flag; undefined if neither works. */
export function fullCollector(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** Options of the trim. */
export interface MemoryTrimOptions {
  /** Bytes written to the stores so far (a counter that only grows). */
  written: () => number;
  /** How long writing must have stopped (default 2 s). */
  quietMs?: number;
  /** How much must have been written since the last collection (default 8 MiB). */
  minBytes?: number;
  collect?: () => void;
}

/** Runs one full collection after each burst of writing, once the writing stops. */
export class MemoryTrim {
  readonly #o: Required<MemoryTrimOptions>;
  #timer: NodeJS.Timeout | undefined;
  #seen = 0;
  #collectedAt = 0;
  /** Collections run, for tests and `status`. */
  collections = 0;

  constructor(options: MemoryTrimOptions & { collect: () => void }) {
    this.#o = { quietMs: 2000, minBytes: 8 * 1024 * 1024, ...options };
    this.#seen = this.#collectedAt = options.written();
  }

  /** Starts watching; the timer never keeps the process alive. */
  start(): void {
    this.#timer ??= setInterval(() => this.check(), this.#o.quietMs).unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One look (what the timer does): collects if enough was written and nothing since the last look. */
  check(): boolean {
    const now = this.#o.written();
    // A store replaced (a role change) starts its count again.
    if (now < this.#collectedAt) this.#collectedAt = 0;
    const quiet = now === this.#seen;
    this.#seen = now;
    if (!quiet || now - this.#collectedAt < this.#o.minBytes) return false;
    this.#collectedAt = now;
    this.#o.collect();
    this.collections++;
    return true;
  }
}
