/** Limits of the group and of the wire, in one place so that both sides and the tests agree. */

/**
 * The protocol this build speaks. Version 1 lacks the `shortcuts` and `keychain` items; version 3 names
 * the items of `changes` and `deltas` entries by one-byte codes (protocol/sync.ts, ITEM_CODES); version 4
 * seals frames with ChaCha20-Poly1305 through OpenSSL instead of tweetnacl's XSalsa20-Poly1305
 * (protocol/secure.ts, `sessionCipher`).
 */
export const PROTOCOL_VERSION = 4;
/** The oldest protocol version this build still accepts. */
export const MIN_PROTOCOL_VERSION = 1;

/** Machines per group, the server included (a server-client counts once). */
export const MAX_GROUP_DEVICES = 10;
/** Users held by the server; clients keep at most as many. */
export const MAX_USERS = 1000;
/**
 * A user used (a login, a change) within this long is never deleted to make room for a new user on the
 * server: past the bound, such a newcomer is refused (USER_LIMIT_REACHED) instead.
 */
export const USER_EVICTION_GRACE_MS = 24 * 3_600_000;
/** Default port of a server. */
export const DEFAULT_PORT = 8443;

/** Largest frame accepted from an authenticated peer, checked by ws before buffering. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Largest frame accepted before the handshake completes. */
export const MAX_HANDSHAKE_FRAME_BYTES = 8 * 1024;
/** Largest encoded item value. */
export const MAX_VALUE_BYTES = 256 * 1024;
/** Target size when splitting bulk transfers (join, snapshots, resume) into frames. */
export const CHUNK_BYTES = 256 * 1024;
/** Longest user name, group id or device id, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 128;
/** Most entries in one list-shaped message field. */
export const MAX_LIST_ENTRIES = 4096;
/** Longest human-readable text in a frame (a refusal's or a rejected change's message), in UTF-8 bytes. */
export const MAX_MESSAGE_TEXT_BYTES = 1024;
/** Deepest nesting accepted inside an item value. */
export const MAX_VALUE_DEPTH = 32;

/** Handshake deadline (also the HTTP upgrade's header deadline). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** TCP connections a listener keeps open at once (10 machines, reconnects overlapping, and slack). */
export const MAX_CONNECTIONS = 64;
/** TCP connections from one source address (a whole group behind one NAT, each reconnect overlapping). */
export const MAX_CONNECTIONS_PER_SOURCE = 2 * MAX_GROUP_DEVICES;
/**
 * Connections still in their handshake at once (from TCP accept to the welcome), from addresses no
 * device has authenticated from since the listener started.
 */
export const MAX_PENDING_HANDSHAKES = 16;
/** Handshakes in progress from one source address (a whole group behind one NAT, reconnecting at once). */
export const MAX_PENDING_HANDSHAKES_PER_SOURCE = MAX_GROUP_DEVICES;
/** Handshakes in progress reserved for addresses a device has authenticated from: strangers cannot take them. */
export const RESERVED_HANDSHAKES = MAX_GROUP_DEVICES;
/** Addresses remembered as ones devices authenticated from (most recent first). */
export const MAX_KNOWN_SOURCES = 4 * MAX_GROUP_DEVICES;

/** Failed administrator logins (per source address, per account) before a lock. */
export const AUTH_FAILURES_BEFORE_LOCK = 5;
/** Failures older than this no longer count. */
export const AUTH_FAILURE_WINDOW_MS = 15 * 60_000;
/** The first lock lasts this long; each further failure doubles it, up to the maximum. */
export const AUTH_LOCK_BASE_MS = 60_000;
export const AUTH_LOCK_MAX_MS = 60 * 60_000;
/** Default heartbeat interval; a peer is gone after this many missed intervals. */
export const DEFAULT_HEARTBEAT_SECONDS = 10;
export const MISSED_HEARTBEATS = 3;
/** A client whose clock is further than this from the server's is a Warning in the server's sync log. */
export const MAX_CLOCK_SKEW_MS = 60_000;
/** Reconnect backoff of a client: full jitter between 0 and min(max, base * 2^attempt). */
export const RECONNECT_BASE_MS = 500;
export const RECONNECT_MAX_MS = 30_000;
/**
 * Sessions in a row the server ends by refusing what a client sent (MESSAGE_INVALID, FRAME_TOO_LARGE …)
 * before the client reports it: an Error in its sync log and red health. Such sessions do not reset
 * the backoff, which keeps growing to RECONNECT_MAX_MS.
 */
export const REFUSALS_REPORTED = 3;
