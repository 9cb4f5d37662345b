/**
 * Rate limit of failed administrator logins, per source address and per account (SPEC §6): one
 * service per agent, which every surface that checks the administrator password calls (the server's
 * admissions, the replication target's, the Remote UI's login), so that the limit is one limit.
 *
 * Five failures within 15 minutes lock the subject for a minute; each further failure doubles the
 * lock, up to an hour. Attempts while locked are refused without being checked (and without extending
 * the lock); a success clears both records. Failure records live in the agent's local store (fsync'ed:
 * a restart forgets nothing).
 *
 * The limit holds under concurrency. Reading the records and persisting a failure take awaits, so
 * concurrent attempts would all read the same old record; instead, while any attempt of a subject is
 * under way, the subject's record is held in memory and is the one every attempt consults and updates.
 * Each attempt that passes the gate reserves one of the subject's remaining failures before its
 * password is checked; an attempt for which no failure is left to reserve waits for an attempt under
 * way to be decided, then passes the gate again. So the sixth of sixteen simultaneous wrong passwords
 * is never checked (the five before it locked the subject: it is AUTH_LOCKED), nor is a right one
 * behind five wrong ones in flight, while nine right passwords at once (nine clients set up at once)
 * are all checked and admitted.
 */
import {
  AUTH_FAILURE_WINDOW_MS, AUTH_FAILURES_BEFORE_LOCK, AUTH_LOCK_BASE_MS, AUTH_LOCK_MAX_MS,
} from '../protocol/limits.js';
import { MfpError } from '../protocol/errors.js';
import type { AuthRecord, Store } from '../storage/store.js';
import type { Clock } from './clock.js';
import { checkAdmission, checkPassword, type AdminSecret } from './identity.js';
import type { SyncLog } from './logger.js';

const NO_FAILURES: AuthRecord = { failures: 0, since: 0, lockedUntil: 0 };

/** Whether a record no longer counts at `now`: no failures, or its window passed and no lock holds. */
function isStale(rec: AuthRecord, now: number): boolean {
  return rec.failures === 0 || (now - rec.since > AUTH_FAILURE_WINDOW_MS && rec.lockedUntil <= now);
}

/** The record after one more failure at `now`. */
export function afterFailure(rec: AuthRecord, now: number): AuthRecord {
  const stale = isStale(rec, now);
  const failures = (stale ? 0 : rec.failures) + 1;
  const lockedUntil =
    failures >= AUTH_FAILURES_BEFORE_LOCK ? now + Math.min(AUTH_LOCK_MAX_MS, AUTH_LOCK_BASE_MS * 2 ** (failures - AUTH_FAILURES_BEFORE_LOCK)) : 0;
  return { failures, since: stale ? now : rec.since, lockedUntil };
}

/**
 * How many attempts of a subject may be checked at once at `now` (none while locked): the failures
 * left before the lock, or one at a time once a lock has ended (each of those failures locks again).
 */
export function attemptsAllowed(rec: AuthRecord, now: number): number {
  if (rec.lockedUntil > now) return 0;
  const failures = isStale(rec, now) ? 0 : rec.failures;
  return Math.max(1, AUTH_FAILURES_BEFORE_LOCK - failures);
}

/** Subjects whose records a login attempt from `address` for `user` touches. */
export function authSubjects(address: string, user: string): { source: string; account: string } {
  return { source: `src:${address}`, account: `acct:${user}` };
}

/** Options of the limiter. */
export interface LoginLimiterOptions {
  /** Where failure records live (the agent's local store). */
  store: Pick<Store, 'authRecord' | 'putAuthRecords'>;
  clock: Clock;
  log: SyncLog;
}

/** One login attempt, from any surface. */
export interface LoginAttempt {
  /** Source address, rate-limited (the listener's normalized source). */
  address: string;
  /** Where it came from, as logged (address:port). */
  remote: string;
  /** The account named. */
  user: string;
  /** The device that tries, when a device does (logged, and on the error). */
  deviceId?: string;
  /** Checks the credentials; called only for an attempt within the limit. */
  verify: () => boolean | Promise<boolean>;
}

/** A device's administrator login as the server and the replication target see it (SCRAM-style proof). */
export interface AdmissionAttempt {
  admin: AdminSecret;
  address: string;
  remote: string;
  deviceId: string;
  admission: { user: string; proof: Uint8Array };
  nonce: Uint8Array;
}

/** An administrator login with the password itself (the Remote UI's), checked against the stored verifier. */
export interface PasswordAttempt {
  admin: AdminSecret;
  address: string;
  remote: string;
  user: string;
  password: string;
}

/** A subject's record while attempts of it are under way: the one copy they all consult. */
interface Subject {
  key: string;
  rec: AuthRecord;
  loaded: Promise<void>;
  /** Attempts that passed the gate and whose outcome is not recorded yet: failures reserved. */
  checking: number;
  /** Attempts holding this entry; it is dropped (the store has it) when none does. */
  holders: number;
  /** Attempts waiting for a reservation: woken when an attempt under way is decided. */
  waiters: (() => void)[];
}

/** The agent's limiter of administrator logins. */
export class LoginLimiter {
  readonly #o: LoginLimiterOptions;
  readonly #subjects = new Map<string, Subject>();

  constructor(options: LoginLimiterOptions) {
    this.#o = options;
  }

  /** Checks a device's administration proof under the limit; throws AUTH_LOCKED or AUTH_INCORRECT. */
  admit(a: AdmissionAttempt): Promise<void> {
    const { user, proof } = a.admission;
    return this.attempt({
      address: a.address,
      remote: a.remote,
      user,
      deviceId: a.deviceId,
      verify: () => checkAdmission(a.admin, user, proof, a.nonce, a.deviceId),
    });
  }

  /** Checks an administrator password under the limit (the Remote UI's login); throws AUTH_LOCKED or AUTH_INCORRECT. */
  password(a: PasswordAttempt): Promise<void> {
    return this.attempt({ address: a.address, remote: a.remote, user: a.user, verify: () => checkPassword(a.admin, a.user, a.password) });
  }

  /** Runs one login attempt under the limit; throws AUTH_LOCKED (not checked) or AUTH_INCORRECT. */
  async attempt(a: LoginAttempt): Promise<void> {
    const { source, account } = authSubjects(a.address, a.user);
    // Taken before any await: every concurrent attempt of a subject shares its one record.
    const subjects = [this.#hold(source), this.#hold(account)];
    try {
      await Promise.all(subjects.map((s) => s.loaded));
      await this.#gate(a, subjects);
      let ok = false;
      try {
        ok = await a.verify();
      } finally {
        for (const s of subjects) s.checking--;
      }
      const now = this.#o.clock.now();
      if (!ok) {
        for (const s of subjects) s.rec = afterFailure(s.rec, now);
        await this.#o.store.putAuthRecords(Object.fromEntries(subjects.map((s) => [s.key, s.rec])));
        const who = a.deviceId ? `device ${a.deviceId}` : `"${a.user}"`;
        this.#o.log.error('AUTH_INCORRECT', `administrator login failed for ${who} from ${a.remote}`, fields(a));
        throw new MfpError('AUTH_INCORRECT', 'administrator user id or password incorrect', fields(a));
      }
      const had = subjects.filter((s) => s.rec.failures > 0);
      for (const s of subjects) s.rec = NO_FAILURES;
      if (had.length > 0) await this.#o.store.putAuthRecords(Object.fromEntries(subjects.map((s) => [s.key, undefined])));
    } finally {
      // Decided (its failure, if any, is in the record): the waiters pass the gate again.
      for (const s of subjects) for (const wake of s.waiters.splice(0)) wake();
      for (const s of subjects) this.#release(s);
    }
  }

  /**
   * Refuses a locked subject, else reserves one failure of each subject; while a subject has none left
   * to reserve, waits for an attempt under way to be decided. The check and the reservation are taken
   * together, with no await between them.
   */
  async #gate(a: LoginAttempt, subjects: Subject[]): Promise<void> {
    for (;;) {
      const now = this.#o.clock.now();
      const until = Math.max(...subjects.map((s) => s.rec.lockedUntil));
      if (until > now) {
        this.#o.log.warning('AUTH_LOCKED', `administrator login from ${a.address} for "${a.user}" refused: locked until ${new Date(until).toISOString()}`, fields(a));
        throw new MfpError('AUTH_LOCKED', `too many failed administrator logins from this address or for this account: retry after ${new Date(until).toISOString()}`, fields(a));
      }
      const full = subjects.find((s) => s.checking >= attemptsAllowed(s.rec, now));
      if (!full) break;
      await new Promise<void>((resolve) => full.waiters.push(resolve));
    }
    for (const s of subjects) s.checking++;
  }

  #hold(key: string): Subject {
    let s = this.#subjects.get(key);
    if (!s) {
      const entry: Subject = { key, rec: NO_FAILURES, loaded: Promise.resolve(), checking: 0, holders: 0, waiters: [] };
      entry.loaded = this.#o.store.authRecord(key).then((rec) => {
        entry.rec = rec;
      });
      this.#subjects.set(key, entry);
      s = entry;
    }
    s.holders++;
    return s;
  }

  #release(s: Subject): void {
    // Every write of this entry was awaited by its holder: the store is current when the last lets go.
    if (--s.holders === 0) this.#subjects.delete(s.key);
  }
}

function fields(a: LoginAttempt): { deviceId?: string } {
  return a.deviceId ? { deviceId: a.deviceId } : {};
}
