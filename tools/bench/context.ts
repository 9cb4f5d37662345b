/** What every figure of the benchmark receives, and the baselines measured first. */
import type { Cleanup } from './cleanup.js';
import type { Profiling } from './profile.js';
import type { BaselineLine, Row } from './report.js';
import type { Summary } from './stats.js';

/** Baselines shared by several figures. */
export interface Baselines {
  /** Raw ws round trip of ~200-byte frames. */
  rtt: Summary;
  /** One LevelDB put of ~200 bytes with fsync. */
  fsyncPut: Summary;
  /** The same without fsync (the `os` durability's floor). */
  osPut: Summary;
  /** Sequential fsync'ed change-shaped batches per second. */
  syncBatchRate: number;
}

/** Sample sizes: full and --quick. */
export interface Sizes {
  rttSamples: number;
  putSamples: number;
  propagationSamples: number;
  propagationWarmup: number;
  users: number;
  startRuns: number;
  /** Changes per second the 9 clients of the throughput figure offer together, and for how long. */
  offeredRate: number;
  loadSeconds: number;
  memoryClients: number;
}

/** A figure's view of the run. */
export interface Ctx {
  cleanup: Cleanup;
  tmp: string;
  quick: boolean;
  sizes: Sizes;
  base: Baselines;
  rows: Row[];
  notes: string[];
  baselineLines: BaselineLine[];
  /** With --profile: where profiles go and their summaries. */
  profile?: Profiling;
  progress(message: string): void;
}
