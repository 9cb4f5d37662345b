/**
 * Rate limit of failed administrator logins, per source address and per account (SPEC §6). Failure
 * records live in the group store, so a restart does not reset them. Five failures within 15 minutes
 * lock the subject for a minute; each further failure doubles the lock, up to an hour. Attempts while
 * locked are refused without being checked (and without extending the lock); a success clears both
 * records.
 */
import {
  AUTH_FAILURE_WINDOW_MS, AUTH_FAILURES_BEFORE_LOCK, AUTH_LOCK_BASE_MS, AUTH_LOCK_MAX_MS,
} from '../protocol/limits.js';
import type { AuthRecord } from '../storage/group-store.js';

/** The record after one more failure at `now`. */
export function afterFailure(rec: AuthRecord, now: number): AuthRecord {
  const stale = rec.failures === 0 || (now - rec.since > AUTH_FAILURE_WINDOW_MS && rec.lockedUntil <= now);
  const failures = (stale ? 0 : rec.failures) + 1;
  const lockedUntil =
    failures >= AUTH_FAILURES_BEFORE_LOCK ? now + Math.min(AUTH_LOCK_MAX_MS, AUTH_LOCK_BASE_MS * 2 ** (failures - AUTH_FAILURES_BEFORE_LOCK)) : 0;
  return { failures, since: stale ? now : rec.since, lockedUntil };
}

/** Subjects whose records an admission attempt from `address` for `user` touches. */
export function authSubjects(address: string, user: string): { source: string; account: string } {
  return { source: `src:${address}`, account: `acct:${user}` };
}
