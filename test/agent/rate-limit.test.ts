/**
 * The login limiter (agent/rate-limit.ts) on a real LevelDB local store and a clock moved by hand:
 * concurrent attempts share one record, so the limit holds whatever the concurrency and however long
 * a check takes; a lock that ended lets one attempt through at a time; a restart forgets nothing.
 */
import { join } from 'node:path';
import test from 'ava';
import { ManualClock } from '../../agent/clock.js';
import { createLogger, SyncLog } from '../../agent/logger.js';
import { LoginLimiter } from '../../agent/rate-limit.js';
import { MfpError } from '../../protocol/errors.js';
import { LevelKv } from '../../storage/level-kv.js';
import { LocalStore } from '../../storage/local-store.js';
import { tempDir } from '../helpers/tmp.js';

/** The README: "Five failures" lock an address or an account (stated here, not read from protocol/limits.ts). */
const FIVE = 5;

async function open(dir: string, clock: ManualClock) {
  const store = await LocalStore.open({ kv: new LevelKv(join(dir, 'local')), now: () => clock.now() });
  const limiter = new LoginLimiter({ store, clock, log: new SyncLog(createLogger({ level: 'silent' }), clock) });
  return { store, limiter };
}

/** Runs attempts at once, each checking its password after a real delay (as an scrypt would); the outcome codes and how many were checked. */
async function race(limiter: LoginLimiter, attempts: { address: string; user?: string; right?: boolean }[]) {
  let checked = 0;
  const outcomes = await Promise.all(
    attempts.map((a) =>
      limiter
        .attempt({
          address: a.address,
          remote: `${a.address}:1`,
          user: a.user ?? 'admin',
          verify: async () => {
            checked++;
            await new Promise((r) => setTimeout(r, 5));
            return a.right === true;
          },
        })
        .then(() => 'ok', (e: MfpError) => e.code),
    ),
  );
  return { outcomes, checked };
}

test('16 concurrent wrong attempts: 5 are checked, 11 wait and are AUTH_LOCKED unchecked; the right one behind them too', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const { store, limiter } = await open(tempDir(t), clock);
  const { outcomes, checked } = await race(limiter, [...Array.from({ length: 15 }, () => ({ address: '10.0.0.1' })), { address: '10.0.0.1', right: true }]);
  t.is(checked, FIVE);
  t.is(outcomes.filter((o) => o === 'AUTH_INCORRECT').length, FIVE);
  t.is(outcomes.filter((o) => o === 'AUTH_LOCKED').length, 11);
  t.is(outcomes[15], 'AUTH_LOCKED');
  t.like(await store.authRecord('src:10.0.0.1'), { failures: 5, lockedUntil: clock.now() + 60_000 });
  t.like(await store.authRecord('acct:admin'), { failures: 5 });
  await store.close();
});

test('nine right passwords at once (nine clients set up together) are all checked and admitted', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const { store, limiter } = await open(tempDir(t), clock);
  const { outcomes, checked } = await race(limiter, Array.from({ length: 9 }, () => ({ address: '10.0.0.1', right: true })));
  t.deepEqual(outcomes, Array.from({ length: 9 }, () => 'ok'));
  t.is(checked, 9);
  // Three wrong among them: each is checked once a reservation frees; the six right ones are admitted.
  const mixed = await race(limiter, Array.from({ length: 9 }, (_, i) => ({ address: '10.0.0.2', right: i % 3 !== 0 })));
  t.deepEqual(mixed.outcomes.filter((o) => o === 'ok').length, 6);
  t.is(mixed.checked, 9);
  await store.close();
});

test('per account across addresses, and per address across accounts', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const { store, limiter } = await open(tempDir(t), clock);
  const byAccount = await race(limiter, Array.from({ length: 12 }, (_, i) => ({ address: `10.0.0.${i + 1}` })));
  t.is(byAccount.checked, FIVE);
  const bySource = await race(limiter, Array.from({ length: 12 }, (_, i) => ({ address: '10.0.1.1', user: `user${i}` })));
  t.is(bySource.checked, FIVE);
  await store.close();
});

test('after a lock ends one attempt is checked at a time, each failure locks again for twice as long; a restart forgets nothing', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1));
  const dir = tempDir(t);
  let { store, limiter } = await open(dir, clock);
  await race(limiter, Array.from({ length: 5 }, () => ({ address: '10.0.0.1' })));
  t.deepEqual((await race(limiter, [{ address: '10.0.0.1', right: true }])).outcomes, ['AUTH_LOCKED']);
  await store.close();
  ({ store, limiter } = await open(dir, clock));
  t.deepEqual((await race(limiter, [{ address: '10.0.0.1', right: true }])).outcomes, ['AUTH_LOCKED'], 'still locked after a restart');
  clock.advance(61_000);
  const after = await race(limiter, Array.from({ length: 4 }, () => ({ address: '10.0.0.1' })));
  t.is(after.checked, 1, 'one at a time once the lock ended');
  t.like(await store.authRecord('src:10.0.0.1'), { failures: 6, lockedUntil: clock.now() + 120_000 });
  clock.advance(121_000);
  t.deepEqual((await race(limiter, [{ address: '10.0.0.1', right: true }])).outcomes, ['ok']);
  t.like(await store.authRecord('src:10.0.0.1'), { failures: 0 });
  t.like(await store.authRecord('acct:admin'), { failures: 0 });
  // Cleared: the next five wrong ones are checked again.
  t.is((await race(limiter, Array.from({ length: 8 }, () => ({ address: '10.0.0.1' })))).checked, FIVE);
  await store.close();
});
