/**
 * The one-look health of a machine for `status`: green, yellow or red, with the reasons. A pure
 * function of facts the agent gathers, so every rule is tested without staging the fault.
 *
 * Red: the machine cannot synchronize until someone acts (the server refused it, or keeps refusing what
 * it sends; its store cannot write; its clock is not set; a device's new users are refused for want of
 * room under the user bound). Yellow: it works but needs watching (offline and queueing, a clock far
 * from the server's, the user bound near). Green otherwise. A sleeping client is green: it was told to.
 */
import { MAX_CLOCK_SKEW_MS, REFUSALS_REPORTED } from '../protocol/limits.js';
import { PLAUSIBLE_SINCE } from './clock.js';
import type { ClientState } from './client.js';

/** The traffic light. */
export type Health = 'green' | 'yellow' | 'red';

/** One reason the machine is not green. */
export interface HealthReason {
  level: 'yellow' | 'red';
  /** An error code or a sync log code (README, "Health"). */
  code: string;
  message: string;
}

/** What health is judged on. */
export interface HealthFacts {
  now: number;
  client?: {
    state: ClientState; server: string; queued: number; skewMs: number | null; error?: { code: string; message: string };
    /** Sessions in a row the server ended refusing what this client sent, and the last refusal. */
    refusals?: { count: number; code: string; message: string };
    /** Users told to log in again (SPEC §8): a login could not give them current data. */
    loginAgain?: { user: string; reason: string; detail: string }[];
  };
  /** On a server: the clients with a session, and their last measured skew. */
  clients?: { deviceId: string; name: string; skewMs: number | null }[];
  /** Stores whose last write failed: name (`local`, `group`) and error. */
  storeErrors?: { store: string; code: string; message: string }[];
  /** User counts against their bound, per store. */
  users?: { store: string; count: number; max: number }[];
  /** On a server: devices whose new users were refused because the full group had no user idle for a day. */
  crowdedOut?: { deviceId: string; name: string; refused: number; since: number; users: string[] }[];
}

/** Share of the user bound from which it is "near". */
export const USER_LIMIT_NEAR = 0.9;

/** Judges health; the reasons are ordered red first. */
export function assessHealth(f: HealthFacts): { health: Health; reasons: HealthReason[] } {
  const red: HealthReason[] = [];
  const yellow: HealthReason[] = [];
  if (f.now < PLAUSIBLE_SINCE) {
    red.push({ level: 'red', code: 'CLOCK_NOT_SET', message: `the clock reads ${new Date(f.now).toISOString()}: set the time (SNTP)` });
  }
  for (const e of f.storeErrors ?? []) {
    red.push({ level: 'red', code: e.code, message: `the ${e.store} store cannot write: ${e.message}` });
  }
  for (const d of f.crowdedOut ?? []) {
    const who = d.name ? `${d.name} (${d.deviceId})` : d.deviceId;
    const sample = d.users.map((u) => JSON.stringify(u)).join(', ');
    red.push({
      level: 'red',
      code: 'USER_LIMIT_REACHED',
      message: `${who} tried to add ${d.refused} new user(s) since ${new Date(d.since).toISOString()} (${sample}${d.refused > d.users.length ? ', …' : ''}) while every user of the full group was used within the last day: refused, nobody was deleted; delete users on the server or remove the device`,
    });
  }
  const c = f.client;
  if (c?.state === 'refused') {
    const code = c.error?.code ?? 'PEER_GONE';
    red.push({ level: 'red', code, message: `refused by the server ${c.server}: ${c.error?.message ?? 'no reason given'}` });
  } else if (c?.refusals?.code === 'GROUP_MISMATCH') {
    red.push({ level: 'red', code: 'GROUP_MISMATCH', message: `the machine at ${c.server} serves another group (${c.refusals.message}); retrying until the group's server answers there (a replaced server: restore its backup)` });
  } else if (c?.refusals && c.refusals.count >= REFUSALS_REPORTED) {
    red.push({ level: 'red', code: c.refusals.code, message: `the server ${c.server} ended ${c.refusals.count} sessions in a row refusing what this client sent (${c.refusals.message}); ${c.queued} change(s) queued` });
  } else if (c && (c.state === 'offline' || c.state === 'connecting')) {
    const why = c.error ? ` (${c.error.code})` : '';
    yellow.push({ level: 'yellow', code: 'SERVER_UNREACHABLE', message: `offline: cannot reach the server ${c.server}${why}; ${c.queued} change(s) queued` });
  }
  if (c && c.skewMs !== null && Math.abs(c.skewMs) > MAX_CLOCK_SKEW_MS) {
    yellow.push({ level: 'yellow', code: 'CLOCK_SKEW', message: `this clock is ${skewText(c.skewMs)} the server's` });
  }
  for (const l of c?.loginAgain ?? []) {
    yellow.push({ level: 'yellow', code: 'LOGIN_AGAIN', message: `${l.user}: Synchronize Custom Settings: Log in again for synchronization. (${l.detail})` });
  }
  for (const s of f.clients ?? []) {
    if (s.skewMs !== null && Math.abs(s.skewMs) > MAX_CLOCK_SKEW_MS) {
      yellow.push({ level: 'yellow', code: 'CLOCK_SKEW', message: `the clock of ${s.name} (${s.deviceId}) is ${skewText(s.skewMs)} the server's` });
    }
  }
  for (const u of f.users ?? []) {
    if (u.count >= Math.ceil(u.max * USER_LIMIT_NEAR)) {
      yellow.push({ level: 'yellow', code: 'USER_LIMIT_NEAR', message: `${u.count} of ${u.max} users in the ${u.store} store: beyond the bound the least recently used are deleted` });
    }
  }
  const reasons = [...red, ...yellow];
  return { health: red.length > 0 ? 'red' : yellow.length > 0 ? 'yellow' : 'green', reasons };
}

function skewText(ms: number): string {
  return `${Math.round(Math.abs(ms) / 1000)} s ${ms > 0 ? 'ahead of' : 'behind'}`;
}
