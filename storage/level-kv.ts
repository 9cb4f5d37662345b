/** LevelDB KvStore (classic-level through `level`): the store of every real agent. */
import { chmod, open as openFile, readdir, readFile, rm, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { dataDirError, MfpError } from '../protocol/errors.js';
import type { KvOp, KvRange, KvSnapshot, KvStore, KvWriteOptions } from './kv.js';

/**
 * Batches of this many operations, or this many bytes, or more go to LevelDB in the chained form (one
 * native call per operation): a join's frame of ~700 operations and ~256 KB is written 4–6 ms faster
 * than as an array. Smaller batches — the steady traffic of group commits — go as an array straight to
 * classic-level's implementation (see `write`): a chained batch's native copy is freed only when V8
 * collects it, which under steady traffic kept a server at 150 MB instead of 80.
 */
const CHAINED_FROM = 1000;
const CHAINED_FROM_BYTES = 64 * 1024;

/** Batches holding more than this (an import, a restore) go as an array: their native copy is freed at once. */
const CHAINED_MAX_BYTES = 2 * 1024 * 1024;

/** classic-level's implementation of an array batch: abstract-level's private API, which each backend provides. */
interface BatchImplementation {
  _batch(ops: readonly KvOp[], options: { sync: boolean }): Promise<void>;
}

/**
 * Free space asked for, beyond the write-ahead log's size, before a poisoned handle is closed to be
 * reopened: LevelDB's recovery writes the log's content as a table and a new manifest.
 */
const REOPEN_SPARE_BYTES = 64 * 1024;

/**
 * LevelDB creates its files (tables, logs, MANIFEST, LOG) with the process umask and has no mode of its
 * own, and it makes new ones at any time (every flush and compaction). The stores hold secrets — the
 * group's secret key, users' data — so before one is opened the process umask is tightened to 077:
 * every file made from then on is 0600, every folder 0700. Only tightened: bits the process already
 * masks stay masked. The umask is process-wide: an embedding process that needs looser modes for its
 * own files gives them explicitly.
 */
function privateFiles(): void {
  const previous = process.umask(0o077);
  process.umask(previous | 0o077);
}

/**
 * Files an older build left with the default umask (0644) are made 0600 before the store opens. Before:
 * once LevelDB is open, a compaction may delete a listed file at any moment. A folder that does not
 * exist yet is made by LevelDB under the tightened umask; a file gone meanwhile needs no mode.
 */
async function privateFolder(location: string): Promise<void> {
  const gone = (err: unknown) => {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  };
  let entries;
  try {
    await chmod(location, 0o700);
    entries = await readdir(location, { withFileTypes: true });
  } catch (err) {
    return gone(err);
  }
  for (const entry of entries) if (entry.isFile()) await chmod(join(location, entry.name), 0o600).catch(gone);
}

/**
 * The seal of a closed LevelDB folder: a file beside LevelDB's own (which LevelDB leaves alone) holding
 * the name, size and modification time of every other file. Any open of the folder — by this build or
 * an older one, even one that writes nothing — rewrites LevelDB's manifest and log, so a folder whose
 * listing still matches its seal is exactly as the sealed close left it.
 */
const SEAL_FILE = 'MFPSYNC-SEAL';

/**
 * The bytes a sealed close keeps (the store's index snapshot), in a file of their own beside LevelDB's,
 * listed in the seal: written into LevelDB they went through its log, which the next open replayed
 * into a table before anything else (25–30 ms of a restart with 1,000 users, and 1–2 MB more written
 * to the flash at every close and compaction).
 */
const SEALED_FILE = 'MFPSYNC-INDEX';

async function listing(location: string): Promise<string> {
  const names = (await readdir(location)).filter((n) => n !== SEAL_FILE).sort();
  const files = await Promise.all(names.map(async (n) => {
    // A file gone between the listing and its stat (LevelDB's temporary files) is listed as gone.
    const s = await stat(join(location, n), { bigint: true }).catch((err: { code?: string }) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    return s ? `${n}\t${s.size}\t${s.mtimeNs}` : `${n}\tgone`;
  }));
  return files.join('\n');
}

/** Writes the kept bytes (fsync'ed: the seal that lists them may outlive a power loss) and the seal. */
async function writeSeal(location: string, kept: Uint8Array | undefined): Promise<void> {
  if (kept !== undefined) {
    const file = await openFile(join(location, SEALED_FILE), 'w', 0o600);
    try {
      await file.writeFile(kept);
      await file.datasync();
    } finally {
      await file.close();
    }
  }
  await writeFile(join(location, SEAL_FILE), await listing(location), { mode: 0o600 });
}

/**
 * Whether the folder matches its seal, and the bytes it kept if it does; the seal and those bytes are
 * deleted either way (they serve one open, and a crash after it must not find them).
 */
async function takeSeal(location: string): Promise<{ untouched: boolean; kept: Uint8Array | undefined }> {
  let seal: string | undefined;
  try {
    seal = await readFile(join(location, SEAL_FILE), 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  const untouched = seal !== undefined && seal === (await listing(location));
  let kept: Uint8Array | undefined;
  if (untouched) {
    kept = await readFile(join(location, SEALED_FILE)).catch((err: { code?: string }) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  }
  await rm(join(location, SEALED_FILE), { force: true });
  if (seal !== undefined) await unlink(join(location, SEAL_FILE));
  return { untouched, kept };
}

/** A KvStore in a LevelDB folder. Only one process may hold it open. */
export class LevelKv implements KvStore {
  readonly location: string;
  /**
   * Made by the first `open`, after the folder's files are private and its seal is read: abstract-level
   * starts opening a database as soon as it is constructed.
   */
  #level: Level<string, Uint8Array> | undefined;
  /** The failure of the last write, until a reopen succeeds: the handle must not be written to. */
  #poisoned: MfpError | undefined;
  #recovering: Promise<void> | undefined;
  /** Reopens so far: an iterator that began before one was cut by it. */
  #reopens = 0;
  /** Writes one at a time: a write must not reach a handle that another write has just poisoned. */
  #writeTail: Promise<void> = Promise.resolve();

  constructor(location: string) {
    this.location = location;

  }

  untouchedSinceSeal = false;
  sealed: Uint8Array | undefined;

  async open(): Promise<void> {
    privateFiles();
    try {
      await privateFolder(this.location);
      const seal = await takeSeal(this.location);
      this.untouchedSinceSeal = seal.untouched;
      this.sealed = seal.kept;
    } catch (err) {
      throw dataDirError(err, this.location, 'open the store at') ?? new MfpError('STORE_WRITE_FAILED', `cannot make the files of the store at ${this.location} private (0600): ${messageOf(err)}`, { cause: err });
    }
    try {
      this.#level ??= new Level<string, Uint8Array>(this.location, { keyEncoding: 'utf8', valueEncoding: 'view' });
      await this.#level.open();
    } catch (err) {
      const code = (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
      if (code === 'LEVEL_LOCKED') {
        throw new MfpError('AGENT_RUNNING', `the store at ${this.location} is held by another process`, { cause: err });
      }
      const denied = dataDirError(err, this.location, 'open the store at');
      if (denied) throw denied;
      // Opening writes (the log's recovery into a table, a new manifest): on a full disk that is a
      // failed write, not a damaged store.
      if (/IO error/.test(messageOf(err))) {
        throw new MfpError('STORE_WRITE_FAILED', `cannot open the store at ${this.location}: ${messageOf(err)}`, { cause: err });
      }
      throw new MfpError('STORE_CORRUPT', `cannot open the store at ${this.location}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The database; before the first open there is none to read or write. */
  get #db(): Level<string, Uint8Array> {
    if (this.#level === undefined) throw new MfpError('STORE_CLOSED', `the store at ${this.location} is not open`);
    return this.#level;
  }

  async close(options: { seal?: boolean; keep?: Uint8Array } = {}): Promise<void> {
    if (this.#level === undefined) return;
    await this.#recovering?.catch(() => undefined);
    // A poisoned handle closes as it is: the next open recovers, dropping the damaged record's block only.
    const poisoned = this.#poisoned !== undefined;
    this.#poisoned = undefined;
    await this.#db.close();
    // A seal that cannot be written (a full disk) is no seal: the next open reads the store as if unsealed.
    if (options.seal && !poisoned) {
      await writeSeal(this.location, options.keep).catch(() => rm(join(this.location, SEALED_FILE), { force: true }).catch(() => undefined));
    }
  }

  /**
   * Closes and reopens the LevelDB after a failed write: its recovery replays the log up to the damaged
   * record (nothing after it was written: writes wait for this) and starts a fresh log. While the disk
   * lacks the room the reopen needs, the handle is kept — reads go on — and this rejects.
   */
  recover(): Promise<void> {
    if (this.#poisoned === undefined) return Promise.resolve();
    this.#recovering ??= this.#reopen().finally(() => (this.#recovering = undefined));
    return this.#recovering;
  }

  async #reopen(): Promise<void> {
    const failure = this.#poisoned!;
    if (this.#db.status === 'open') {
      const short = await this.#reopenShortfall();
      if (short > 0) {
        throw new MfpError('STORE_WRITE_FAILED', `the store at ${this.location} takes no write after a failed one (${failure.message}) until it is reopened, which needs ${short} more bytes of free space`, { cause: failure });
      }
      await this.#db.close();
    }
    try {
      await this.#db.open();
    } catch (err) {
      throw new MfpError('STORE_WRITE_FAILED', `cannot reopen the store at ${this.location} after a failed write: ${messageOf(err)}`, { cause: err });
    }
    this.#reopens++;
    this.#poisoned = undefined;
  }

  /** Bytes missing for a reopen to succeed (0 when there seems to be room, or it cannot be told). */
  async #reopenShortfall(): Promise<number> {
    try {
      let logBytes = 0;
      for (const name of await readdir(this.location)) if (name.endsWith('.log')) logBytes += (await stat(join(this.location, name))).size;
      const fs = await statfs(this.location);
      return Math.max(0, logBytes + REOPEN_SPARE_BYTES - fs.bavail * fs.bsize);
    } catch {
      return 0;
    }
  }

  /** Before a read: waits for a reopen under way; reopens a handle that a failed reopen left closed. */
  async #readable(): Promise<void> {
    await this.#recovering?.catch(() => undefined);
    if (this.#poisoned !== undefined && this.#db.status !== 'open') await this.recover();
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    if (this.#poisoned !== undefined || this.#recovering) await this.#readable();
    const reopens = this.#reopens;
    try {
      return await this.#db.get(key);
    } catch (err) {
      throw this.#readFailure(err, reopens);
    }
  }

  /** A read that failed; one that a reopen cut short (the handle closed under it) says so. */
  #readFailure(err: unknown, reopensBefore: number): MfpError {
    if (this.#reopens !== reopensBefore || this.#recovering) {
      return new MfpError('STORE_CLOSED', `the store at ${this.location} was reopened after a failed write while this read was under way: read again`, { cause: err });
    }
    return wrap(err, 'read');
  }

  /**
   * Writes the operations as one atomic batch. An array batch goes straight to classic-level's
   * implementation once its operations are checked here (string keys, Uint8Array values: the
   * backend's own formats): abstract-level's public `batch()` copies and re-checks every operation,
   * 7–10 µs each on the event loop, a third of a live change's JavaScript. Anything this path cannot
   * take — a store not open, an invalid operation — goes through the public path, which reports it.
   */
  async write(ops: readonly KvOp[], options: KvWriteOptions): Promise<void> {
    if (ops.length === 0) return;
    const previous = this.#writeTail;
    let done!: () => void;
    this.#writeTail = new Promise((resolve) => (done = resolve));
    try {
      await previous;
      await this.recover();
      await this.#write(ops, options);
    } finally {
      done();
    }
  }

  async #write(ops: readonly KvOp[], options: KvWriteOptions): Promise<void> {
    try {
      // classic-level honours `sync` on batches: the write is fsync'ed before it resolves.
      let bytes = 0;
      for (const op of ops) if (op.type === 'put') bytes += op.value.length;
      if ((ops.length < CHAINED_FROM && bytes < CHAINED_FROM_BYTES) || bytes > CHAINED_MAX_BYTES) {
        if (this.#db.status === 'open' && ops.every(isBackendOp)) {
          await (this.#db as unknown as BatchImplementation)._batch(ops, { sync: options.sync });
        } else {
          await this.#db.batch(ops as KvOp[], { sync: options.sync } as never);
        }
        return;
      }
      const batch = this.#db.batch();
      try {
        for (const op of ops) {
          if (op.type === 'put') batch.put(op.key, op.value);
          else batch.del(op.key);
        }
      } catch (err) {
        // An invalid operation: nothing was written; the batch is released, not left open.
        await batch.close();
        throw err;
      }
      await batch.write({ sync: options.sync } as never);
    } catch (err) {
      const failure = wrap(err, 'write');
      // Whatever failed, the log may now end in a damaged record: nothing more goes to this handle.
      if (failure.code === 'STORE_WRITE_FAILED') this.#poisoned = failure;
      throw failure;
    }
  }

  entries(range: KvRange): AsyncIterable<[string, Uint8Array]> {
    return this.#iterate(range);
  }

  snapshot(): KvSnapshot {
    let snapshot: ReturnType<Level<string, Uint8Array>['snapshot']>;
    try {
      snapshot = this.#db.snapshot();
    } catch (err) {
      if (this.#poisoned !== undefined) throw new MfpError('STORE_WRITE_FAILED', `the store at ${this.location} is being reopened after a failed write (${this.#poisoned.message})`, { cause: err });
      throw wrap(err, 'read');
    }
    return {
      entries: (range) => this.#iterate(range, snapshot),
      close: () => snapshot.close(),
    };
  }

  async *#iterate(range: KvRange, snapshot?: unknown): AsyncIterable<[string, Uint8Array]> {
    const options: Record<string, unknown> = { ...range };
    if (range.limit === undefined) delete options.limit;
    if (snapshot !== undefined) options.snapshot = snapshot;
    else if (this.#poisoned !== undefined || this.#recovering) await this.#readable();
    const reopens = this.#reopens;
    try {
      for await (const entry of this.#db.iterator(options)) yield entry as [string, Uint8Array];
    } catch (err) {
      // A reopen closes every iterator and snapshot of the handle: the read fails whole, never short.
      throw this.#readFailure(err, reopens);
    }
  }
}

/** An operation in classic-level's own formats: a string key and, for a put, a Uint8Array value. */
function isBackendOp(op: KvOp): boolean {
  return typeof op.key === 'string' && (op.type === 'put' ? op.value instanceof Uint8Array : op.type === 'del');
}

function wrap(err: unknown, what: string): MfpError {
  if (err instanceof MfpError) return err;
  const code = (err as { code?: string }).code;
  if (code === 'LEVEL_DATABASE_NOT_OPEN') return new MfpError('STORE_CLOSED', 'the store is closed', { cause: err });
  return new MfpError('STORE_WRITE_FAILED', `store ${what} failed: ${messageOf(err)}`, { cause: err });
}

/** The most telling message of a LevelDB error: the native cause (`IO error: …: No space left on device`) when there is one. */
function messageOf(err: unknown): string {
  const cause = (err as { cause?: { message?: string } }).cause?.message;
  const message = (err as Error).message;
  return cause && !message.includes(cause) ? `${message}: ${cause}` : message;
}
