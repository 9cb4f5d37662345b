/**
 * In-memory KvStore: a sorted key array beside a map. For unit tests and the simulator. Its data
 * outlives close(): opening the same object again sees it, as reopening a LevelDB folder would.
 */
import { MfpError } from '../protocol/errors.js';
import { compareKeys, inRange, type KvOp, type KvRange, type KvSnapshot, type KvStore } from './kv.js';

/** A KvStore that keeps everything in memory. */
export class MemoryKv implements KvStore {
  #keys: string[] = [];
  #values = new Map<string, Uint8Array>();
  #open = false;
  /** Writes so far, and their number at the last sealed close (-1: none). */
  #writes = 0;
  #sealedAt = -1;
  #kept: Uint8Array | undefined;
  untouchedSinceSeal = false;
  sealed: Uint8Array | undefined;

  async open(): Promise<void> {
    this.#open = true;
    this.untouchedSinceSeal = this.#sealedAt === this.#writes;
    this.sealed = this.untouchedSinceSeal ? this.#kept : undefined;
    this.#sealedAt = -1;
    this.#kept = undefined;
  }

  async close(options: { seal?: boolean; keep?: Uint8Array } = {}): Promise<void> {
    this.#open = false;
    this.#sealedAt = options.seal ? this.#writes : -1;
    this.#kept = options.seal ? options.keep : undefined;
  }

  /** Nothing to recover: a failed write (an invalid op) wrote nothing and damaged nothing. */
  async recover(): Promise<void> {
    this.#check();
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#check();
    return this.#values.get(key);
  }

  async write(ops: readonly KvOp[]): Promise<void> {
    this.#check();
    // All or nothing: every op is checked before any is applied, as a LevelDB batch would be.
    for (const op of ops) {
      if (typeof op.key !== 'string' || (op.type === 'put' && !(op.value instanceof Uint8Array)) || (op.type !== 'put' && op.type !== 'del')) {
        throw new MfpError('STORE_WRITE_FAILED', `invalid batch op for key ${JSON.stringify(op.key)}; nothing was written`);
      }
    }
    this.#writes++;
    for (const op of ops) {
      if (op.type === 'put') {
        if (!this.#values.has(op.key)) this.#keys.splice(this.#lowerBound(op.key), 0, op.key);
        // Copy: the caller may reuse its buffer, as LevelDB would not care.
        this.#values.set(op.key, Uint8Array.prototype.slice.call(op.value));
      } else if (this.#values.delete(op.key)) {
        this.#keys.splice(this.#lowerBound(op.key), 1);
      }
    }
  }

  entries(range: KvRange): AsyncIterable<[string, Uint8Array]> {
    this.#check();
    return MemoryKv.#iterate(this.#keys, this.#values, range);
  }

  snapshot(): KvSnapshot {
    this.#check();
    // Values are never mutated in place (puts store copies), so copying the key list and map suffices.
    const keys = [...this.#keys];
    const values = new Map(this.#values);
    return { entries: (range) => MemoryKv.#iterate(keys, values, range), close: async () => undefined };
  }

  static async *#iterate(keys: readonly string[], values: ReadonlyMap<string, Uint8Array>, range: KvRange): AsyncIterable<[string, Uint8Array]> {
    const lo = range.gte ?? range.gt;
    const start = lo === undefined ? 0 : lowerBound(keys, lo);
    const snapshot: [string, Uint8Array][] = [];
    for (let i = start; i < keys.length; i++) {
      const key = keys[i]!;
      if (!inRange(key, { lt: range.lt, lte: range.lte })) break;
      if (inRange(key, range)) snapshot.push([key, values.get(key)!]);
    }
    if (range.reverse) snapshot.reverse();
    const limit = range.limit ?? Infinity;
    for (let i = 0; i < snapshot.length && i < limit; i++) yield snapshot[i]!;
  }

  #lowerBound(key: string): number {
    return lowerBound(this.#keys, key);
  }

  #check(): void {
    if (!this.#open) throw new MfpError('STORE_CLOSED', 'the memory store is not open');
  }
}

/** Index of the first key not below `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
