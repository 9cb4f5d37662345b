/**
 * Coded errors. Codes are API: they are printed by the shell, sent in `refuse` frames and listed in the
 * README. Messages may change; codes may not. Misuse of an argument by a caller is a plain TypeError.
 */

/** Every stable error code mfpsync produces, with the README's one-line meaning. */
export const ERROR_CODES = {
  // shell and control socket
  USAGE: 'the command line is malformed',
  NOT_INITIALIZED: 'the data directory has no identity: run `mfpsync init`',
  ALREADY_INITIALIZED: 'the data directory already holds an identity',
  DATA_DIR_INVALID: '--data names a file, or a path through one: give a directory (or a path where one can be made)',
  PERMISSION_DENIED: 'this user may not read or write the data directory: run as the agent\'s user, or give that user the directory (chown)',
  STORE_READ_ONLY: 'the data directory is on a read-only filesystem: the data is intact; remount it read-write',
  AGENT_NOT_RUNNING: 'no agent answers on the control socket of this data directory',
  AGENT_RUNNING: 'an agent already runs on this data directory',
  CONTROL_FAILED: 'the control socket answered with something that is not a control response',
  INVALID_ARGUMENT: 'an argument is out of range or of the wrong form',
  UNKNOWN_ITEM: 'the item name is not in the catalog for that kind of data',
  NOT_FOUND: 'the user, group or device does not exist',
  VALUE_TOO_LARGE: 'an item value exceeds the size limit',
  WRONG_ROLE: 'the command is not available in the current role',
  // Remote UI (HTTPS API)
  AUTH_REQUIRED: 'the Remote UI request has no live session: log in (sessions end after 30 minutes idle)',
  CSRF_INVALID: 'the state-changing Remote UI request lacks its session\'s X-CSRF-Token header',
  REQUEST_TOO_LARGE: 'the Remote UI request body exceeds its size limit; nothing was changed',
  REQUEST_MALFORMED: 'the Remote UI request body is not the JSON the route takes; nothing was changed',
  // roles and admission
  CLIENTS_ACTIVE: 'clients are connected; stop them first or pass --force',
  ADDRESS_INCORRECT: 'the server (or target) cannot be reached at that address, or no server answered the search for it',
  SERVER_AMBIGUOUS: 'more than one server answered the search: enter the address of one with --server',
  AUTH_INCORRECT: 'administrator user id or password incorrect',
  AUTH_SETTINGS_MISMATCH: 'authentication or group-management settings differ between the machines',
  AUTH_LOCKED: 'too many failed administrator logins from this address or for this account; retry later',
  GROUP_FULL: 'the group already has 10 machines, the server included',
  DEVICE_REMOVED: 'this device was removed from the group; re-admit it with the administrator account',
  DEVICE_KEY_MISMATCH: 'the device id is known to the server under another key',
  GROUP_KEY_CHANGED: 'the server presents a different group key than the one this client pinned',
  GROUP_MISMATCH: 'the server belongs to another group than the one this client joined',
  PROTOCOL_UNSUPPORTED: 'the peer speaks no protocol version this agent supports',
  NOT_A_SERVER: 'the machine at that address does not accept clients',
  HANDSHAKE_TIMEOUT: 'the peer did not complete the handshake in time',
  CLOCK_NOT_SET: 'the system clock is implausible; set the time (SNTP) before serving',
  // wire
  FRAME_TOO_LARGE: 'a frame exceeds the size limit',
  FRAME_MALFORMED: 'a frame is not valid MessagePack or is truncated',
  FRAME_TAMPERED: 'an encrypted frame failed authentication: altered, replayed, reordered or truncated',
  MESSAGE_INVALID: 'a decoded message has the wrong shape',
  MESSAGE_UNKNOWN: 'a decoded message has an unknown type',
  MESSAGE_UNEXPECTED: 'a message arrived in a session state where it is not allowed',
  PEER_GONE: 'the peer closed the connection or stopped answering',
  // storage
  STORE_CLOSED: 'the store is closed (or was reopened after a failed write while a read was under way: read again)',
  STORE_WRITE_FAILED: 'the store could not write (disk full or I/O error); nothing was applied',
  STORE_CORRUPT: 'the store holds a record that cannot be decoded',
  USER_LIMIT_REACHED: 'the server holds its 1,000 users and each was used within the last day: a new user is refused until room is made',
  SYNC_RESTRICTED: 'import/export of synchronized data is refused while client synchronization runs',
  // import / export
  IMPORT_INVALID: 'the import file is missing, damaged, truncated, of another program or of an unsupported format; nothing was imported',
  EXPORT_FAILED: 'the export file could not be written; no partial file was left',
  PREPARE_INCOMPLETE: 'the selected users could not be brought up to date from the server; no export window was opened',
  // backup and restore
  DBBU01: 'cannot create the backup on the device',
  DBBU02: 'cannot create the backup on the network (cause unknown): check the settings, the SMB share\'s rights and the network',
  DBBU03: 'not enough free space for the backup',
  DBBU04: 'the network destination was not found',
  DBBU05: 'the network destination is not accessible (credentials or rights)',
  DBBU06: 'the backup could not be saved',
  DBRS01: 'cannot restore from the device',
  DBRS02: 'cannot restore from the network (cause unknown)',
  DBRS03: 'the network destination was not found',
  DBRS04: 'the network destination is not accessible (credentials or rights)',
  REPLICATION_RUNNING: 'a replication is executing; backup and restore wait until it ends',
  STOP_REPLICATION_FIRST: 'replication to another destination is configured: perform [Stop Replication], then change the destination',
  DEST_UNSUPPORTED: 'the replication target is a server, already the target of another server, runs an older version, or has Department ID management enabled',
} as const;

/** A stable UPPER_SNAKE error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Domain fields that help whoever reads the error. */
export interface ErrorFields {
  deviceId?: string;
  user?: string;
  item?: string;
  cause?: unknown;
}

/** An error with a stable code; the one error class mfpsync throws across module boundaries. */
export class MfpError extends Error {
  readonly code: ErrorCode;
  readonly deviceId?: string;
  readonly user?: string;
  readonly item?: string;

  constructor(code: ErrorCode, message: string, fields: ErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'MfpError';
    this.code = code;
    if (fields.deviceId !== undefined) this.deviceId = fields.deviceId;
    if (fields.user !== undefined) this.user = fields.user;
    if (fields.item !== undefined) this.item = fields.item;
  }
}

/** True for a known error code string (codes arrive over the wire and the control socket). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/**
 * A filesystem error of the data directory as its own code, or undefined for any other error: a path
 * that is a file (EEXIST from mkdir, ENOTDIR), no permission (EACCES, EPERM), a read-only filesystem
 * (EROFS). LevelDB reports the same causes in its message only.
 */
export function dataDirError(err: unknown, path: string, doing: string): MfpError | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  // The cause chain's messages: LevelDB's errno text is in a cause.
  let text = '';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) text += ` ${e.message}`;
  const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
  if (code === 'EEXIST' || code === 'ENOTDIR' || /Not a directory/.test(text)) {
    return new MfpError('DATA_DIR_INVALID', `cannot ${doing} ${path}: it, or a folder on its path, is a file, not a directory; give --data a directory`, { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM' || /Permission denied/.test(text)) {
    return new MfpError('PERMISSION_DENIED', `cannot ${doing} ${path}: permission denied for this user${uid}; run as the agent's user, or give this user the directory (chown)`, { cause: err });
  }
  if (code === 'EROFS' || /Read-only file system/.test(text)) {
    return new MfpError('STORE_READ_ONLY', `cannot ${doing} ${path}: its filesystem is mounted read-only; the data is intact: remount it read-write, then start again`, { cause: err });
  }
  return undefined;
}

/** Converts anything thrown into an MfpError, keeping a coded one as it is. */
export function toMfpError(err: unknown, fallback: ErrorCode = 'CONTROL_FAILED'): MfpError {
  if (err instanceof MfpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MfpError(fallback, message, { cause: err });
}
