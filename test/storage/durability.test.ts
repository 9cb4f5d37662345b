/**
 * Fault test: nothing acknowledged is lost when the process holding the store is killed. A child
 * (fixtures/writer.ts) applies changes to a GroupStore on a LevelDB folder and prints each
 * acknowledgement; the test kills it with SIGKILL mid-stream, opens the folder, and checks every
 * acknowledged change — several rounds on the same folder, the counters continuing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { GroupStore } from '../../storage/group-store.js';
import { LevelKv } from '../../storage/level-kv.js';
import { tempDir } from '../helpers/tmp.js';

const WRITER = fileURLToPath(new URL('./fixtures/writer.js', import.meta.url));
const ROUNDS = 3;
const ACKS_PER_ROUND = 300;

/** Runs the writer until it has acknowledged `acks` changes, then kills it; returns the counters it acknowledged. */
async function runAndKill(dir: string, acks: number): Promise<{ ready: number; acked: number[]; signal: string | null; stderr: string }> {
  const child = spawn(process.execPath, [WRITER, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let ready = -1;
  const acked: number[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^(ready|ack) (\d+)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'ready') ready = Number(m[2]);
    else acked.push(Number(m[2]));
    if (acked.length >= acks) {
      child.kill('SIGKILL');
      break;
    }
  }
  // If the writer died on its own, the loop ended early: the caller sees too few acks and the stderr.
  const [, signal] = await exited;
  return { ready, acked, signal, stderr };
}

test('every change acknowledged before a SIGKILL is in the store, across repeated kills', async (t) => {
  const dir = join(tempDir(t), 'group');
  const acked: number[] = [];
  let lastCounter = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const run = await runAndKill(dir, ACKS_PER_ROUND);
    t.is(run.acked.length, ACKS_PER_ROUND, `round ${round}: the writer stopped early: ${run.stderr}`);
    t.is(run.signal, 'SIGKILL', `round ${round}`);
    // The writer continues from what the store remembers, acknowledged or not.
    t.is(run.ready, lastCounter, `round ${round}: the writer resumed from another counter`);
    t.deepEqual(
      run.acked,
      run.acked.map((_, i) => lastCounter + 1 + i),
      `round ${round}: acks out of order`,
    );
    acked.push(...run.acked);

    const store = await GroupStore.open({ kv: new LevelKv(dir) });
    try {
      t.is(store.epoch, 'durability');
      lastCounter = store.device('W')?.lastCounter ?? 0;
      t.true(lastCounter >= acked.at(-1)!, `round ${round}: lastCounter ${lastCounter} < last ack ${acked.at(-1)}`);
      // Every applied change took exactly one seq: none lost in between, none applied twice.
      t.is(store.seq, lastCounter, `round ${round}`);
      const missing: number[] = [];
      for (const c of acked) {
        const rec = await store.readItem(`g:${c}`, 'address-list');
        if (!rec || rec.v !== c || JSON.stringify(rec.val) !== JSON.stringify([{ counter: c }])) missing.push(c);
      }
      t.deepEqual(missing, [], `round ${round}: acknowledged changes lost or altered`);
      const log = await store.logAfter(0, Number.MAX_SAFE_INTEGER);
      t.is(log.length, lastCounter, `round ${round}: log length`);
      t.true(
        log.every((f, i) => f.seq === i + 1 && f.e === `g:${i + 1}` && f.v === i + 1),
        `round ${round}: the log does not match the items`,
      );
    } finally {
      await store.close();
    }
  }
  t.is(acked.length, ROUNDS * ACKS_PER_ROUND);
});
