/**
 * Physical baselines, measured in the same run as the figures they divide: a raw WebSocket round trip
 * on loopback, one LevelDB put with and without fsync, LevelDB batch writes with fsync, and a raw
 * WebSocket transfer of given frames. Nothing of mfpsync runs here except the codec-free byte paths.
 */
import { Level } from 'level';
import { WebSocket, WebSocketServer } from 'ws';
import type { Cleanup } from './cleanup.js';
import { now, summarize, type Summary } from './stats.js';

/** A ws echo server and a connected client, both with perMessageDeflate off. */
async function wsPair(cleanup: Cleanup, onServerMessage: (ws: WebSocket, data: Buffer) => void): Promise<WebSocket> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  cleanup.defer('ws baseline server', () => new Promise<void>((resolve) => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => resolve());
  }));
  wss.on('connection', (ws) => {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => onServerMessage(ws, data));
  });
  const port = (wss.address() as { port: number }).port;
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  client.binaryType = 'nodebuffer';
  await new Promise<void>((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  cleanup.defer('ws baseline client', () => client.terminate());
  return client;
}

/** Round trips of `bytes`-byte binary frames to an echo server: p50/p99 over `samples` after warm-up. */
export async function wsRoundTrip(cleanup: Cleanup, o: { bytes: number; samples: number; warmup: number }): Promise<Summary> {
  const scope = cleanup.scope();
  try {
    const client = await wsPair(scope, (ws, data) => ws.send(data, { binary: true }));
    let pending: (() => void) | undefined;
    client.on('message', () => {
      const p = pending;
      pending = undefined;
      p?.();
    });
    const frame = Buffer.alloc(o.bytes, 0x5a);
    const times: number[] = [];
    for (let i = 0; i < o.warmup + o.samples; i++) {
      const t0 = now();
      await new Promise<void>((resolve) => {
        pending = resolve;
        client.send(frame, { binary: true });
      });
      if (i >= o.warmup) times.push(now() - t0);
    }
    return summarize(times);
  } finally {
    await scope.run();
  }
}

/** Time to send `frames` one way over a fresh ws connection until the last one is received. */
export async function wsTransfer(cleanup: Cleanup, frames: readonly Uint8Array[], direction: 'down' | 'up'): Promise<number> {
  const scope = cleanup.scope();
  try {
    let serverSide: WebSocket | undefined;
    let received = 0;
    let done: (() => void) | undefined;
    const onFrame = () => {
      if (++received === frames.length) done?.();
    };
    const client = await wsPair(scope, (ws, data) => {
      // The first (tiny) frame only introduces the client; the rest are the payload going up.
      if (!serverSide) {
        serverSide = ws;
        ws.send(Buffer.from([1]));
        return;
      }
      void data;
      onFrame();
    });
    await new Promise<void>((resolve) => {
      client.once('message', () => resolve());
      client.send(Buffer.from([0]));
    });
    if (direction === 'down') client.on('message', onFrame);
    const finished = new Promise<void>((resolve) => (done = resolve));
    const t0 = now();
    const sender = direction === 'down' ? serverSide! : client;
    for (const f of frames) sender.send(f, { binary: true });
    await finished;
    return now() - t0;
  } finally {
    await scope.run();
  }
}

/** Opens a scratch LevelDB in a temp folder (closed and removed by the cleanup). */
async function scratchLevel(cleanup: Cleanup, parent: string): Promise<Level<string, Uint8Array>> {
  const dir = cleanup.tempDir(parent, 'lvl-');
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  cleanup.defer('scratch level', () => db.close());
  return db;
}

/** One put of a `bytes`-byte value per sample, with or without fsync. */
export async function levelPut(cleanup: Cleanup, parent: string, o: { bytes: number; samples: number; warmup: number; sync: boolean }): Promise<Summary> {
  const scope = cleanup.scope();
  try {
    const db = await scratchLevel(scope, parent);
    const value = new Uint8Array(o.bytes).fill(0x61);
    const times: number[] = [];
    for (let i = 0; i < o.warmup + o.samples; i++) {
      const key = `I\x00u:bench\x00item-${i % 64}`;
      const t0 = now();
      await db.put(key, value, { sync: o.sync } as never);
      if (i >= o.warmup) times.push(now() - t0);
    }
    return summarize(times);
  } finally {
    await scope.run();
  }
}

/** Writes `entries` as one atomic batch with fsync into a fresh LevelDB; returns the time in ms. */
export async function levelBatchWrite(cleanup: Cleanup, parent: string, entries: readonly [string, Uint8Array][]): Promise<number> {
  const scope = cleanup.scope();
  try {
    const db = await scratchLevel(scope, parent);
    // The chained form: LevelDB's fastest way in for many operations (see storage/level-kv.ts).
    const t0 = now();
    const batch = db.batch();
    for (const [key, value] of entries) batch.put(key, value);
    await batch.write({ sync: true } as never);
    return now() - t0;
  } finally {
    await scope.run();
  }
}

/**
 * Sequential fsync'ed batches shaped like one accepted change on the server (item, log entry, previous
 * log entry deleted, seq, user's last use): how many a second the disk allows without group commit.
 */
export async function levelSyncBatchRate(cleanup: Cleanup, parent: string, o: { batches: number; valueBytes: number }): Promise<{ perSecond: number; summary: Summary }> {
  const scope = cleanup.scope();
  try {
    const db = await scratchLevel(scope, parent);
    const value = new Uint8Array(o.valueBytes).fill(0x62);
    const small = new Uint8Array(24).fill(0x63);
    const times: number[] = [];
    const t0 = now();
    for (let i = 0; i < o.batches; i++) {
      const t = now();
      // The chained form, as the store writes batches of this size (see storage/level-kv.ts).
      await db
        .batch()
        .put(`I\x00u:u${i % 50}\x00language`, value)
        .put(`L\x00${i.toString(16).padStart(12, '0')}`, small)
        .del(`L\x00${(i - 1).toString(16).padStart(12, '0')}`)
        .put('M\x00seq', small)
        .put(`U\x00u${i % 50}`, small)
        .write({ sync: true } as never);
      times.push(now() - t);
    }
    return { perSecond: (o.batches / (now() - t0)) * 1000, summary: summarize(times) };
  } finally {
    await scope.run();
  }
}
