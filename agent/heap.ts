/**
 * Heap settings of a process whose job is running agents (`mfpsync run`, `mfpsync sim`, the bench's
 * machines). Process-wide, so the library never applies them itself: a firmware that embeds the Agent
 * in a process of its own chooses its own heap settings (the README says which one we use and why).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Keeps V8's young generation at its starting size (two 1 MB semi-spaces) instead of letting it grow
 * to two 16 MB ones during a burst of traffic. V8 gives a grown young generation back only in a full
 * collection started by its memory reducer, and an agent whose garbage dies young seldom needs one:
 * measured after 5,000 `item.set` calls, a server stayed at 141 MB for more than 20 s (new space
 * 32 MB, old space 45 MB of which 30 MB live) instead of settling at ~80 MB. Propagation and
 * throughput were the same with and without it, within the noise of the run; a join, which allocates
 * the most, took about 10 % longer (more scavenges).
 * The flag is read each time the young generation would grow, so setting it at run time is enough.
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
