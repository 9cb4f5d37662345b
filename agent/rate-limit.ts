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
import { MfpError } from '../protocol/errors.js';
import type { Store } from '../storage/store.js';
import type { AuthRecord } from '../storage/group-store.js';
import { checkAdmission, type AdminSecret } from './identity.js';
import type { SyncLog } from './logger.js';

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

/** One administrator login attempt, as a listener (server or replica) sees it. */
export interface AdminAttempt {
  /** Where failure records live (the group store on a server, the local store on a replica). */
  store: Pick<Store, 'authRecord' | 'putAuthRecords'>;
  admin: AdminSecret;
  /** Source address (rate-limited) and address:port (logged). */
  address: string;
  remote: string;
  deviceId: string;
  admission: { user: string; proof: Uint8Array };
  nonce: Uint8Array;
  now: number;
  log: SyncLog;
}

/** Checks administrator credentials under the rate limit; throws AUTH_LOCKED or AUTH_INCORRECT. */
export async function checkAdminLogin(a: AdminAttempt): Promise<void> {
  const { store, deviceId, now } = a;
  const { source, account } = authSubjects(a.address, a.admission.user);
  const [bySource, byAccount] = await Promise.all([store.authRecord(source), store.authRecord(account)]);
  const until = Math.max(bySource.lockedUntil, byAccount.lockedUntil);
  if (until > now) {
    a.log.warning('AUTH_LOCKED', `administrator login from ${a.address} for "${a.admission.user}" refused: locked until ${new Date(until).toISOString()}`, { deviceId });
    throw new MfpError('AUTH_LOCKED', `too many failed administrator logins from this address or for this account: retry after ${new Date(until).toISOString()}`, { deviceId });
  }
  if (!checkAdmission(a.admin, a.admission.user, a.admission.proof, a.nonce, deviceId)) {
    await store.putAuthRecords({ [source]: afterFailure(bySource, now), [account]: afterFailure(byAccount, now) });
    a.log.error('AUTH_INCORRECT', `administrator login failed for device ${deviceId} from ${a.remote}`, { deviceId });
    throw new MfpError('AUTH_INCORRECT', 'administrator user id or password incorrect', { deviceId });
  }
  if (bySource.failures > 0 || byAccount.failures > 0) await store.putAuthRecords({ [source]: undefined, [account]: undefined });
}
