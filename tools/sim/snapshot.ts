/**
 * What the simulator shows, as plain data: one snapshot per tick (the live view renders it, `--json`
 * prints it as one line) and the summary at the end. No agent, socket or timer here.
 */

/** The simulator's options, validated. */
export interface SimOptions {
  /** Machines in all: one server and devices − 1 clients (2–10). */
  devices: number;
  /** Users loaded into the server. */
  users: number;
  /** Edits per second across the fleet. */
  rate: number;
  /** Seconds of activity; undefined: until stopped. */
  durationS: number | undefined;
  seed: number;
  /** Parent of the run's temporary data directory. */
  parentDir: string;
}

/** Where the run is. */
export type SimPhase = 'starting' | 'loading' | 'joining' | 'running' | 'settling' | 'stopping' | 'done';

/** A bar's worth of progress: users loaded into the server, or a client's join. */
export interface SimProgress {
  /** `loading`: users written locally; for a join, the client's join-progress phase. */
  phase: 'loading' | 'waiting' | 'receiving' | 'applying' | 'done';
  done: number;
  total: number;
  /** Bytes received (joins). */
  bytes: number;
}

/** One machine's row. */
export interface SimMachine {
  name: string;
  role: 'server' | 'client';
  /** starting, loading, serving, standalone, connecting, joining, synchronized, offline, asleep, refused, stopped, failed. */
  state: string;
  /** Server's latest seq minus this client's cursor; null where it means nothing (the server, before joining). */
  lag: number | null;
  /** Item changes per second on this machine over the last seconds (the server: changes committed). */
  changesPerSec: number;
  /** A client: whether the machine sleeps. The server: how many clients block its deep sleep. */
  asleep: boolean;
  blockedBy: number | null;
  /** Users on this machine (the group's copy on the server). */
  users: number;
  progress: SimProgress | null;
  /** The last failure of this machine (an operation the driver made, a refused session), if any. */
  error: string | null;
}

/** Counters of the whole run. */
export interface SimTotals {
  edits: number;
  logins: number;
  sleeps: number;
  /** Edits that reached another client (one per receiving client). */
  propagated: number;
  /** Edit → remote item-changed on another client, in ms, over the propagated changes so far. */
  p50Ms: number | null;
  p95Ms: number | null;
  /** Edits that lost to a newer server value (kept in the conflict logs). */
  conflicts: number;
  errors: number;
}

/** One tick. */
export interface SimSnapshot {
  type: 'snapshot';
  phase: SimPhase;
  elapsedMs: number;
  devices: number;
  users: number;
  rate: number;
  seed: number;
  dir: string;
  machines: SimMachine[];
  totals: SimTotals;
}

/** The end of a run. */
export interface SimSummary {
  type: 'summary';
  elapsedMs: number;
  /** What ended it: the duration, or the signal. */
  stoppedBy: 'duration' | 'SIGINT' | 'SIGTERM' | 'error';
  devices: number;
  users: number;
  seed: number;
  totals: SimTotals;
  /** Every client synchronized with no cursor lag and nothing queued when the agents were closed. */
  settled: boolean;
  /** The largest cursor lag at the end. */
  maxLag: number;
  /** Failures, per machine ("name: CODE: message"). */
  errors: string[];
  dir: string;
  dirRemoved: boolean;
}
