/**
 * Replication messages (SPEC §9): a server pushing its image to its replication target, and a new
 * server pulling a replica's image to recover from it. The replica listens; the other side connects.
 *
 *   replica → peer   repl-challenge  {protocol range, replica id and key, group it replicates (or ''),
 *                                     nonce, admission salt, ephemeral key, its auth settings}
 *   peer → replica   repl-hello      {body, sig}  body: purpose (push | pull | release), identity, group id and key
 *                                     (push), admission proof (first push, every pull), ephemeral key,
 *                                     the tag digests of the image it pushes;
 *                                     sig: the group key's (push) or the device key's (pull) signature
 *                                     over challenge frame ‖ body
 *   replica → peer   repl-welcome    {body, sig}  body: negotiated version, admission proof answer, its
 *                                     last run, its image's group and tag digests;
 *                                     sig: the replica's device key over challenge ‖ hello body ‖ body
 *   then sealed (protocol/secure.ts):
 *   push: replica → `repl-state` bucket digests of the tags that differ; server → `repl-data` entries of
 *         the buckets that differ, `repl-commit` with the buckets sent and the image's digest; replica →
 *         `repl-done` once installed.
 *   pull: peer → `repl-pull`; replica → `repl-data`…, `repl-commit`; peer → `repl-done`.
 *   release (protocol 2; `replication stop`): the paired server's hello, signed by the group key, no
 *         admission; replica → `repl-done` {entries: 0} once it no longer serves the group as target.
 *
 * A `refuse` (session family) ends either side with a code. Image entries are raw store records: the
 * receiver stages them and installs nothing until the commit's digest checks (storage/image.ts).
 */
import { MfpError } from './errors.js';
import { MAX_FRAME_BYTES } from './limits.js';
import { bin, bool, describeValue, type Fields, fields, int, isFields, list, oneOf, str, strOrNull } from './validate.js';
import { readAuthSettings, type AuthSettings } from './session.js';

/** Message types of the replication family. */
export const ReplicationType = {
  Challenge: 'repl-challenge',
  Hello: 'repl-hello',
  Welcome: 'repl-welcome',
  State: 'repl-state',
  Data: 'repl-data',
  Commit: 'repl-commit',
  Done: 'repl-done',
  Pull: 'repl-pull',
} as const;

/**
 * The replication protocol this build speaks. 2 adds `release` (a stopped server frees its target): a
 * server pushes only to a target that speaks it — an older one could not be released at the stop
 * (DEST_UNSUPPORTED, "the version of the machine is old") — while a replica still takes pushes and
 * pulls of protocol 1, and a recovery pulls from a replica of protocol 1. 3 seals frames with
 * ChaCha20-Poly1305 (protocol/secure.ts, `replicationCipher`).
 */
export const REPLICATION_PROTOCOL = 3;
/** The oldest replication protocol a replica or a recovering server accepts. */
export const MIN_REPLICATION_PROTOCOL = 1;
/** The protocol in which `release` appeared: what a server needs of its target. */
export const RELEASE_PROTOCOL = 2;

/** A digest of a tag or bucket: [name, 16 bytes]. */
export type DigestEntry = [string, Uint8Array];

export interface ReplChallengeMessage {
  type: typeof ReplicationType.Challenge;
  protocol: number;
  minProtocol: number;
  replicaId: string;
  replicaKey: Uint8Array;
  /** The group whose image the replica holds, or '' for none. */
  groupId: string;
  nonce: Uint8Array;
  salt: Uint8Array;
  ephemeral: Uint8Array;
  settings: AuthSettings;
  software: string;
}

export interface ReplSignedMessage<T extends string> {
  type: T;
  body: Uint8Array;
  sig: Uint8Array;
}

/** What the connecting side says. */
export interface ReplHelloBody {
  protocol: number;
  purpose: 'push' | 'pull' | 'release';
  deviceId: string;
  publicKey: Uint8Array;
  name: string;
  software: string;
  /** Push: the group whose image is pushed, and its public key (which signs this hello). */
  groupId: string | null;
  groupKey: Uint8Array | null;
  admission: { user: string; proof: Uint8Array } | null;
  ephemeral: Uint8Array;
  /** Push: the tag digests of the image. */
  tags: DigestEntry[];
}

/** What the replica answers. */
export interface ReplWelcomeBody {
  protocol: number;
  adminProof: Uint8Array | null;
  /** The replica's last completed run, or null. */
  last: { at: number; seq: number; entries: number; counts: ImageCounts } | null;
  /** The group of the image it holds ('' for none) and its tag digests. */
  groupId: string;
  tags: DigestEntry[];
}

export interface ReplStateMessage {
  type: typeof ReplicationType.State;
  buckets: DigestEntry[];
  final: boolean;
}

export interface ReplDataMessage {
  type: typeof ReplicationType.Data;
  entries: [string, Uint8Array][];
}

export interface ReplCommitMessage {
  type: typeof ReplicationType.Commit;
  /** Buckets whose content was sent (possibly empty ones): the receiver replaces exactly these. */
  buckets: string[];
  total: Uint8Array;
  entries: number;
  /** When the image was taken, and the group's sequence number then. */
  at: number;
  seq: number;
  groupId: string;
  /** What the image holds, for a technician to check before recovering from it. */
  counts: ImageCounts;
}

/** Users, user groups and machines in an image. */
export interface ImageCounts {
  users: number;
  groups: number;
  devices: number;
}

export interface ReplDoneMessage {
  type: typeof ReplicationType.Done;
  entries: number;
}

export interface ReplPullMessage {
  type: typeof ReplicationType.Pull;
}

export type ReplicationMessage =
  | ReplChallengeMessage
  | ReplSignedMessage<typeof ReplicationType.Hello>
  | ReplSignedMessage<typeof ReplicationType.Welcome>
  | ReplStateMessage
  | ReplDataMessage
  | ReplCommitMessage
  | ReplDoneMessage
  | ReplPullMessage;

/** Buckets in one list: every slot of every tag. */
const MAX_BUCKETS = 64 * 1024;
const MAX_BODY = 64 * 1024;

function digests(t: string, o: Fields, k: string, max: number): DigestEntry[] {
  return list(t, o, k, max).map((x, i) => {
    if (!Array.isArray(x) || x.length !== 2 || typeof x[0] !== 'string' || x[0].length > 16 || !(x[1] instanceof Uint8Array) || x[1].length !== 16) {
      throw new MfpError('MESSAGE_INVALID', `${t}.${k}[${i}] must be [name, 16 bytes]`);
    }
    return [x[0], x[1]];
  });
}

function countsOf(t: string, o: Fields): ImageCounts {
  const c = fields(t, o, 'counts');
  return { users: int(t, c, 'users'), groups: int(t, c, 'groups'), devices: int(t, c, 'devices') };
}

function settingsOf(t: string, o: Fields): AuthSettings {
  return readAuthSettings(t, o);
}

/** Validates a decoded replication message. */
export function readReplicationMessage(o: Fields): ReplicationMessage {
  const t = String(o.type);
  switch (o.type) {
    case ReplicationType.Challenge: {
      const protocol = int(t, o, 'protocol', 1, 65535);
      return {
        type: ReplicationType.Challenge,
        protocol,
        minProtocol: int(t, o, 'minProtocol', 1, protocol),
        replicaId: str(t, o, 'replicaId', 64),
        replicaKey: bin(t, o, 'replicaKey', 32),
        groupId: str(t, o, 'groupId', 64),
        nonce: bin(t, o, 'nonce', 32),
        salt: bin(t, o, 'salt', 16),
        ephemeral: bin(t, o, 'ephemeral', 32),
        settings: settingsOf(t, o),
        software: str(t, o, 'software', 64),
      };
    }
    case ReplicationType.Hello:
    case ReplicationType.Welcome:
      return { type: o.type, body: bin(t, o, 'body', undefined, MAX_BODY), sig: bin(t, o, 'sig', 64) };
    case ReplicationType.State:
      return { type: ReplicationType.State, buckets: digests(t, o, 'buckets', MAX_BUCKETS), final: bool(t, o, 'final') };
    case ReplicationType.Data: {
      const entries = list(t, o, 'entries', MAX_FRAME_BYTES).map((x, i) => {
        if (!Array.isArray(x) || x.length !== 2 || typeof x[0] !== 'string' || x[0].length === 0 || !(x[1] instanceof Uint8Array)) {
          throw new MfpError('MESSAGE_INVALID', `${t}.entries[${i}] must be [key, bytes]`);
        }
        return [x[0], x[1]] as [string, Uint8Array];
      });
      return { type: ReplicationType.Data, entries };
    }
    case ReplicationType.Commit: {
      const buckets = list(t, o, 'buckets', MAX_BUCKETS).map((x, i) => {
        if (typeof x !== 'string' || x.length === 0 || x.length > 16) throw new MfpError('MESSAGE_INVALID', `${t}.buckets[${i}] must be a bucket name`);
        return x;
      });
      return {
        type: ReplicationType.Commit,
        buckets,
        total: bin(t, o, 'total', 16),
        entries: int(t, o, 'entries'),
        at: int(t, o, 'at'),
        seq: int(t, o, 'seq'),
        groupId: str(t, o, 'groupId', 64),
        counts: countsOf(t, o),
      };
    }
    case ReplicationType.Done:
      return { type: ReplicationType.Done, entries: int(t, o, 'entries') };
    case ReplicationType.Pull:
      return { type: ReplicationType.Pull };
    default:
      throw new MfpError('MESSAGE_UNKNOWN', `unknown replication message ${describeValue(o.type)}`);
  }
}

/** Validates a decoded repl-hello body. */
export function readReplHelloBody(o: unknown): ReplHelloBody {
  const t = 'repl-hello';
  if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'repl-hello body must be a map');
  const admission = o.admission === null || o.admission === undefined ? null : fields(t, o, 'admission');
  const groupKey = o.groupKey === null || o.groupKey === undefined ? null : bin(t, o, 'groupKey', 32);
  return {
    protocol: int(t, o, 'protocol', 1, 65535),
    purpose: oneOf(t, o, 'purpose', ['push', 'pull', 'release'] as const),
    deviceId: str(t, o, 'deviceId', 64),
    publicKey: bin(t, o, 'publicKey', 32),
    name: str(t, o, 'name'),
    software: str(t, o, 'software', 64),
    groupId: strOrNull(t, o, 'groupId', 64),
    groupKey,
    admission: admission ? { user: str(t, admission, 'user'), proof: bin(t, admission, 'proof', 32) } : null,
    ephemeral: bin(t, o, 'ephemeral', 32),
    tags: digests(t, o, 'tags', 64),
  };
}

/** Validates a decoded repl-welcome body. */
export function readReplWelcomeBody(o: unknown): ReplWelcomeBody {
  const t = 'repl-welcome';
  if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'repl-welcome body must be a map');
  const last = o.last === null || o.last === undefined ? null : fields(t, o, 'last');
  return {
    protocol: int(t, o, 'protocol', 1, 65535),
    adminProof: o.adminProof === null || o.adminProof === undefined ? null : bin(t, o, 'adminProof', 32),
    last: last ? { at: int(t, last, 'at'), seq: int(t, last, 'seq'), entries: int(t, last, 'entries'), counts: countsOf(t, last) } : null,
    groupId: str(t, o, 'groupId', 64),
    tags: digests(t, o, 'tags', 64),
  };
}
