/**
 * Session messages: the handshake that opens every connection.
 *
 *   server → client  challenge  {protocol range, server id, group id, nonce, admission salt, ephemeral key}
 *   client → server  hello      {body, sig}  body: versions, capabilities, device identity, pinned group,
 *                                known epoch and cursor, auth settings, admission proof (first time only),
 *                                the client's ephemeral key;
 *                                sig: the device key's Ed25519 signature over challenge frame ‖ body
 *   server → client  welcome    {body, sig}  body: negotiated version, capabilities, group id and key,
 *                                epoch, seq, last change counter seen, how to resume;
 *                                sig: the group key's signature over challenge ‖ hello body ‖ body
 *   either           refuse     {code, message}, then close
 *
 * Bodies travel as bytes inside the frame so that signatures cover exactly what was received. The
 * welcome signature covers the challenge as the client received it, so a man in the middle who alters
 * it (a lower protocol, another ephemeral key) is caught. Every frame after the welcome is sealed with
 * keys derived from the two ephemeral keys (protocol/secure.ts).
 */
import { createHash } from 'node:crypto';
import { MAX_MESSAGE_TEXT_BYTES, PROTOCOL_VERSION } from './limits.js';
import { bin, bool, describeValue, type Fields, fields, int, invalid, isFields, oneOf, str, strList, strOrNull } from './validate.js';
import { MfpError, isErrorCode, type ErrorCode } from './errors.js';

/** Message types of the session family. */
export const SessionType = {
  Challenge: 'challenge',
  Hello: 'hello',
  Welcome: 'welcome',
  Refuse: 'refuse',
} as const;

/** First frame, from the server. */
export interface ChallengeMessage {
  type: typeof SessionType.Challenge;
  protocol: number;
  minProtocol: number;
  serverId: string;
  groupId: string;
  nonce: Uint8Array;
  salt: Uint8Array;
  /** The server's X25519 key for this connection only. */
  ephemeral: Uint8Array;
}

/** Signed envelope of a hello or welcome body. */
export interface SignedMessage<T extends string> {
  type: T;
  body: Uint8Array;
  sig: Uint8Array;
}

export type HelloMessage = SignedMessage<typeof SessionType.Hello>;
export type WelcomeMessage = SignedMessage<typeof SessionType.Welcome>;

/** Authentication and group-management settings every machine of a group must share. */
export interface AuthSettings {
  loginService: string;
  departmentIds: boolean;
  /**
   * SHA-256 (hex) of the machine's registered Department IDs (departmentIdsDigest): the set itself
   * never travels. Absent on the wire from a build before it, read as the empty set's digest.
   */
  departmentIdsDigest?: string;
}

/** Most Department IDs one machine registers. */
export const MAX_DEPARTMENT_IDS = 10_000;

/**
 * A Department ID in its canonical form: 1-7 digits (Canon's format), leading zeros dropped, so
 * `0000123` and `123` are the same department. Undefined when the text is not one.
 */
export function canonicalDepartmentId(text: string): string | undefined {
  const t = text.trim();
  return /^\d{1,7}$/.test(t) ? String(Number(t)) : undefined;
}

/**
 * The digest of a set of Department IDs, as the handshake compares it: order and repeats do not
 * matter. The IDs must be canonical (canonicalDepartmentId).
 */
export function departmentIdsDigest(ids: Iterable<string>): string {
  const sorted = [...new Set(ids)].sort((a, b) => Number(a) - Number(b));
  return createHash('sha256').update(`mfpsync department ids 1\n${sorted.join('\n')}`).digest('hex');
}

/** The digest of no Department IDs: what a machine without a list (or a build before lists) has. */
export const EMPTY_DEPARTMENT_IDS_DIGEST = departmentIdsDigest([]);

/**
 * Why a client's settings may not join this server's group (SPEC §6), or undefined when they match:
 * the login service, whether Department ID management is on, and the registered Department IDs.
 */
export function authSettingsMismatch(server: AuthSettings, client: AuthSettings): MfpError | undefined {
  if (client.loginService !== server.loginService) {
    return new MfpError('AUTH_SETTINGS_MISMATCH', `login service differs: server "${server.loginService}", client "${client.loginService}"`);
  }
  if (client.departmentIds !== server.departmentIds) {
    return new MfpError('AUTH_SETTINGS_MISMATCH', `Department ID management differs: server ${server.departmentIds ? 'on' : 'off'}, client ${client.departmentIds ? 'on' : 'off'}`);
  }
  const mine = server.departmentIdsDigest ?? EMPTY_DEPARTMENT_IDS_DIGEST;
  const theirs = client.departmentIdsDigest ?? EMPTY_DEPARTMENT_IDS_DIGEST;
  if (mine !== theirs) {
    const show = (d: string) => (d === EMPTY_DEPARTMENT_IDS_DIGEST ? 'none registered' : `digest ${d.slice(0, 12)}`);
    return new MfpError('AUTH_SETTINGS_MISMATCH', `Department IDs differ: server ${show(mine)}, client ${show(theirs)}; register the same Department IDs on every machine of the group`);
  }
  return undefined;
}

/** Reads the settings map of a hello or a replication challenge. */
export function readAuthSettings(t: string, o: Fields): AuthSettings {
  const s = fields(t, o, 'settings');
  return {
    loginService: str(t, s, 'loginService', 64),
    departmentIds: bool(t, s, 'departmentIds'),
    ...(s.departmentIdsDigest === undefined ? {} : { departmentIdsDigest: hexDigest(t, s) }),
  };
}

function hexDigest(t: string, s: Fields): string {
  const d = str(t, s, 'departmentIdsDigest', 64);
  if (!/^[0-9a-f]{64}$/.test(d)) invalid(t, 'settings.departmentIdsDigest', 'must be 64 hex digits');
  return d;
}

/** What a client says about itself. */
export interface HelloBody {
  protocol: number;
  minProtocol: number;
  capabilities: string[];
  deviceId: string;
  publicKey: Uint8Array;
  name: string;
  serial: string;
  location: string;
  software: string;
  /** Group this client joined before, or null. */
  groupId: string | null;
  /** Epoch and cursor of its last sync, or null/0. */
  epoch: string | null;
  cursor: number;
  /** Heartbeat interval in seconds: the server drops the client after three missed. */
  heartbeat: number;
  /** Version of the sharing scopes (SPEC §4) this client last applied; 0 for none. */
  sharingVersion: number;
  settings: AuthSettings;
  /** First admission: the administrator account's proof (see agent/identity.ts). */
  admission: { user: string; proof: Uint8Array } | null;
  /** The client's X25519 key for this connection only. */
  ephemeral: Uint8Array;
}

/** How the client resumes. */
export type ResumeMode = 'join' | 'cursor' | 'checksum';

/** What the server answers. */
export interface WelcomeBody {
  protocol: number;
  capabilities: string[];
  groupId: string;
  groupKey: Uint8Array;
  epoch: string;
  seq: number;
  lastCounter: number;
  resume: ResumeMode;
  /** When the hello carried an admission: the server's proof that it holds the administrator secret. */
  adminProof: Uint8Array | null;
  /** The group's sharing scopes (SPEC §4): items in device scope, and the version of this setting. */
  sharing: SharingState;
}

/** Scope of the scope-configurable items: `device` items are kept per machine, not shared. */
export interface SharingState {
  version: number;
  device: string[];
}

/** Refusal, with a stable code. */
export interface RefuseMessage {
  type: typeof SessionType.Refuse;
  code: ErrorCode;
  message: string;
}

export type SessionMessage = ChallengeMessage | HelloMessage | WelcomeMessage | RefuseMessage;

const MAX_BODY = 64 * 1024;

/** Validates a decoded session message. */
export function readSessionMessage(o: Fields): SessionMessage {
  switch (o.type) {
    case SessionType.Challenge: {
      const protocol = int('challenge', o, 'protocol', 1, 65535);
      const minProtocol = int('challenge', o, 'minProtocol', 1, protocol);
      return {
        type: SessionType.Challenge,
        protocol,
        minProtocol,
        serverId: str('challenge', o, 'serverId'),
        groupId: str('challenge', o, 'groupId'),
        nonce: bin('challenge', o, 'nonce', 32),
        salt: bin('challenge', o, 'salt', 16),
        ephemeral: bin('challenge', o, 'ephemeral', 32),
      };
    }
    case SessionType.Hello:
    case SessionType.Welcome:
      return { type: o.type, body: bin(o.type, o, 'body', undefined, MAX_BODY), sig: bin(o.type, o, 'sig', 64) };
    case SessionType.Refuse: {
      const code = str('refuse', o, 'code');
      return { type: SessionType.Refuse, code: isErrorCode(code) ? code : 'PEER_GONE', message: str('refuse', o, 'message', MAX_MESSAGE_TEXT_BYTES) };
    }
    default:
      throw new MfpError('MESSAGE_UNKNOWN', `unknown session message ${describeValue(o.type)}`);
  }
}

/** Validates a decoded hello body. */
export function readHelloBody(o: unknown): HelloBody {
  const t = 'hello';
  if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'hello body must be a map');
  const admission = o.admission === null || o.admission === undefined ? null : fields(t, o, 'admission');
  const protocol = int(t, o, 'protocol', 1, 65535);
  return {
    protocol,
    minProtocol: int(t, o, 'minProtocol', 1, protocol),
    capabilities: strList(t, o, 'capabilities', 256, 64),
    deviceId: str(t, o, 'deviceId', 64),
    publicKey: bin(t, o, 'publicKey', 32),
    name: str(t, o, 'name'),
    serial: str(t, o, 'serial'),
    location: str(t, o, 'location'),
    software: str(t, o, 'software', 64),
    groupId: strOrNull(t, o, 'groupId', 64),
    epoch: strOrNull(t, o, 'epoch', 64),
    cursor: int(t, o, 'cursor'),
    heartbeat: int(t, o, 'heartbeat', 1, 3600),
    sharingVersion: o.sharingVersion === undefined ? 0 : int(t, o, 'sharingVersion'),
    settings: readAuthSettings(t, o),
    admission: admission ? { user: str(t, admission, 'user'), proof: bin(t, admission, 'proof', 32) } : null,
    ephemeral: bin(t, o, 'ephemeral', 32),
  };
}

/** Validates a decoded welcome body. */
export function readWelcomeBody(o: unknown): WelcomeBody {
  const t = 'welcome';
  if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'welcome body must be a map');
  return {
    protocol: int(t, o, 'protocol', 1, PROTOCOL_VERSION),
    capabilities: strList(t, o, 'capabilities', 256, 64),
    groupId: str(t, o, 'groupId', 64),
    groupKey: bin(t, o, 'groupKey', 32),
    epoch: str(t, o, 'epoch', 64),
    seq: int(t, o, 'seq'),
    lastCounter: int(t, o, 'lastCounter'),
    resume: oneOf(t, o, 'resume', ['join', 'cursor', 'checksum'] as const),
    adminProof: o.adminProof === null || o.adminProof === undefined ? null : bin(t, o, 'adminProof', 32),
    sharing: readSharing(t, fields(t, o, 'sharing')),
  };
}

function readSharing(t: string, o: Fields): SharingState {
  return { version: int(t, o, 'version'), device: strList(t, o, 'device', 16, 64) };
}
