/**
 * The agent process's heap setting: its young generation stays at its starting size under a workload
 * whose survivors make V8 grow it 16-fold otherwise. Each case runs in a fresh Node.js process, since the
 * setting is process-wide and V8 only grows the young generation, never back by itself.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';

const run = promisify(execFile);
const HEAP = new URL('../../agent/heap.js', import.meta.url).href;

/** New-space size in MB after allocating 2 million objects while keeping the last 200,000 alive. */
async function newSpaceAfterBurst(setting: boolean): Promise<number> {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    ${setting ? `(await import(${JSON.stringify(HEAP)})).keepYoungGenerationSmall();` : ''}
    const ring = new Array(200_000);
    for (let i = 0; i < 2_000_000; i++) ring[i % ring.length] = { i, s: 'x' + i };
    const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    process.stdout.write(String(space.space_size / 1048576));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return Number(stdout);
}

test('keepYoungGenerationSmall keeps new space at its starting 2 MB through a burst that grows it otherwise', async (t) => {
  const [kept, grown] = await Promise.all([newSpaceAfterBurst(true), newSpaceAfterBurst(false)]);
  t.true(kept <= 2, `new space with the setting: ${kept} MB`);
  // The same burst without the setting grows it: the workload does exercise what the setting stops.
  t.true(grown >= 8, `new space without the setting: ${grown} MB`);
});
