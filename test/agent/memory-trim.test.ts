/**
 * The memory trim: one full collection after each burst of writing, once the writing has stopped; none
 * while writes go on, none for small amounts, none when idle. Driven by `check()` (what its timer calls).
 */
import test from 'ava';
import { fullCollector, MemoryTrim } from '../../agent/memory-trim.js';

const MiB = 1024 * 1024;

function trim(minBytes = 8 * MiB) {
  let written = 0;
  let collected = 0;
  const t = new MemoryTrim({ written: () => written, collect: () => collected++, minBytes });
  return { t, write: (n: number) => (written += n), reset: () => (written = 0), collected: () => collected };
}

test('collects once after a burst, when a look finds no new writes', (t) => {
  const m = trim();
  m.write(5 * MiB);
  t.false(m.t.check(), 'still writing');
  m.write(5 * MiB);
  t.false(m.t.check(), 'still writing');
  t.true(m.t.check(), 'quiet after 10 MiB');
  t.is(m.collected(), 1);
  t.false(m.t.check(), 'nothing new: no second collection');
  t.is(m.collected(), 1);
});

test('small writes never collect; they add up to a burst', (t) => {
  const m = trim();
  for (let i = 0; i < 7; i++) {
    m.write(MiB);
    m.t.check();
    t.false(m.t.check(), `after ${i + 1} MiB`);
  }
  m.write(MiB);
  m.t.check();
  t.true(m.t.check(), 'at 8 MiB');
  t.is(m.collected(), 1);
});

test('a store replaced (its count starting again) does not stop later collections', (t) => {
  const m = trim();
  m.write(20 * MiB);
  m.t.check();
  t.true(m.t.check());
  m.reset();
  m.write(9 * MiB);
  m.t.check();
  t.true(m.t.check());
  t.is(m.collected(), 2);
});

test('the full collector is available in this Node.js and runs', (t) => {
  const gc = fullCollector();
  t.is(typeof gc, 'function');
  t.notThrows(() => gc!());
});
