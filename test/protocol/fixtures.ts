/**
 * One valid frame per message type of every family, built as typed messages and encoded with the real
 * encoder (STYLE habit 3). Keys come from fixed seeds so that the bytes are the same on every run: the
 * truncation and mutation tests then explore the same inputs each time.
 */
import nacl from 'tweetnacl';
import { deviceIdOf, signParts, type Identity } from '../../agent/identity.js';
import { encodeMessage, encodeValue, type Message, type MessageType } from '../../protocol/codec.js';
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../protocol/limits.js';
import { SessionType, type HelloBody, type WelcomeBody } from '../../protocol/session.js';
import { AckStatus, SyncType } from '../../protocol/sync.js';
import { HeartbeatType } from '../../protocol/heartbeat.js';
import { capabilitiesFor } from '../../storage/catalog.js';

/** A deterministic identity from a one-byte seed pattern. */
export function fixedIdentity(seedByte: number): Identity {
  const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(seedByte));
  return { publicKey: kp.publicKey, secretKey: kp.secretKey, deviceId: deviceIdOf(kp.publicKey) };
}

/** Deterministic bytes 0, step, 2·step, … (mod 256). */
export function pattern(length: number, step = 7, start = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (start + i * step) & 0xff;
  return out;
}

export const serverIdentity = fixedIdentity(0x11);
export const clientIdentity = fixedIdentity(0x22);
export const groupKey = fixedIdentity(0x33);
export const GROUP_ID = 'grp-7f3a9c2e41d0';

/** A job-defaults value as a firmware would hold it: send destinations are machine-local. */
export const jobDefaults = {
  copy: { copies: 2, duplex: 'long-edge', color: 'mono', density: 1.5, staple: null },
  fax: { resolution: 'fine', destinations: [{ name: 'Head office', number: '+81-3-1234-5678' }] },
  'scan-and-send': {
    format: 'pdf',
    resolution: 300,
    destinations: [
      { kind: 'email', to: 'alice@example.com' },
      { kind: 'smb', path: '\\\\fs01\\scans\\alice' },
    ],
  },
};

/** A per-user address list: entries with nested lists of addresses. */
export const addressList = [
  { id: 'a1', name: 'Bob Tanaka', reading: 'たなか', emails: ['bob@example.com', 'b.tanaka@example.org'], fax: [] },
  { id: 'a2', name: 'Accounting', emails: [], fax: [{ number: '+81-3-9876-5432', ecm: true }], tags: ['dept', 'billing'] },
];

export const challenge: Extract<Message, { type: 'challenge' }> = {
  type: SessionType.Challenge,
  protocol: PROTOCOL_VERSION,
  minProtocol: MIN_PROTOCOL_VERSION,
  serverId: serverIdentity.deviceId,
  groupId: GROUP_ID,
  nonce: pattern(32, 13, 5),
  salt: pattern(16, 29, 3),
  ephemeral: pattern(32, 41, 7),
};
export const challengeBytes = encodeMessage(challenge);

/** The hello body a client signs (first admission, so it carries a proof). */
export const helloBody: HelloBody = {
  protocol: PROTOCOL_VERSION,
  minProtocol: MIN_PROTOCOL_VERSION,
  capabilities: capabilitiesFor(PROTOCOL_VERSION),
  deviceId: clientIdentity.deviceId,
  publicKey: clientIdentity.publicKey,
  name: 'MFP-3F-East',
  serial: 'SN-40AB-77120',
  location: '3F 複合機コーナー',
  software: 'mfpsync 0.1.0',
  groupId: null,
  epoch: null,
  cursor: 0,
  heartbeat: 10,
  sharingVersion: 3,
  settings: { loginService: 'ldap', departmentIds: true },
  admission: { user: 'admin', proof: pattern(32, 3, 9) },
  ephemeral: pattern(32, 17, 11),
};
export const helloBodyBytes = encodeValue(helloBody);

/** The welcome body the server signs with the group key. */
export const welcomeBody: WelcomeBody = {
  protocol: PROTOCOL_VERSION,
  capabilities: capabilitiesFor(PROTOCOL_VERSION),
  groupId: GROUP_ID,
  groupKey: groupKey.publicKey,
  epoch: 'ep-2024-05-31T09:12:44Z-3',
  seq: 1042,
  lastCounter: 16,
  resume: 'join',
  adminProof: pattern(32, 5, 13),
  sharing: { version: 3, device: ['job-defaults'] },
};
export const welcomeBodyBytes = encodeValue(welcomeBody);

/** Every message type once, in family order. */
export const MESSAGES: readonly Message[] = [
  challenge,
  {
    type: SessionType.Hello,
    body: helloBodyBytes,
    sig: signParts(clientIdentity.secretKey, challengeBytes, helloBodyBytes),
  },
  {
    type: SessionType.Welcome,
    body: welcomeBodyBytes,
    sig: signParts(groupKey.secretKey, challengeBytes, helloBodyBytes, welcomeBodyBytes),
  },
  { type: SessionType.Refuse, code: 'GROUP_FULL', message: 'the group already has 10 machines, the server included' },
  {
    type: SyncType.JoinOffer,
    entities: [
      ['u:alice', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
      ['u:田中', '60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752'],
      ['g:sales', 'fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13'],
      ['d:', 'a4e624d686e03ed2767c0abd85c14426b0b1157d2ce81d27bb4fe4f6f01d688a'],
    ],
  },
  { type: SyncType.JoinPlan, upload: ['u:田中'], replace: ['u:alice', 'g:sales', 'd:'] },
  {
    type: SyncType.Upload,
    entities: [
      {
        e: 'u:田中',
        items: {
          language: { display: 'ja', keyboard: 'ja-JP' },
          'address-list': addressList,
          'job-defaults': jobDefaults,
          'auto-print': true,
        },
      },
    ],
    final: true,
  },
  { type: SyncType.UploadAck, created: ['u:田中'], skipped: [] },
  {
    type: SyncType.Snapshot,
    reason: 'join',
    items: [
      ['u:alice', 'language', 3, { display: 'en', keyboard: 'en-GB' }],
      ['u:alice', 'address-list', 7, addressList],
      ['u:alice', 'screen-after-login', 1, 'copy'],
      ['g:sales', 'address-list', 2, [{ id: 'g1', name: 'Sales desk', emails: ['sales@example.com'], fax: [] }]],
      ['d:', 'shared-buttons', 4, [{ label: 'Scan to archive', app: 'scan', preset: { format: 'pdf/a' } }]],
    ],
    replace: ['u:alice', 'g:sales', 'd:'],
    deletes: ['u:dave'],
    versions: [['u:bob', 'home', 4], ['u:bob', 'timeline', 12]],
    copies: [['u:alice', 'job-defaults', { copy: { copies: 2 } }]],
    final: true,
    seq: 1042,
  },
  {
    type: SyncType.Changes,
    list: [
      [17, 'u:alice', 'job-defaults', 5, jobDefaults],
      [18, 'u:alice', 'timeline', -1, [{ at: 1717146000000, job: 'copy', pages: 12 }]],
    ],
  },
  {
    type: SyncType.Ack,
    list: [
      [17, AckStatus.Applied, 6, null],
      [18, AckStatus.Duplicate, 1, [{ at: 1717146000000, job: 'copy', pages: 12 }]],
      [19, AckStatus.Conflict, 9, { display: 'fr', keyboard: 'fr-FR' }],
      [20, AckStatus.Rejected, 0, ['VALUE_TOO_LARGE', 'job-defaults is 300000 bytes encoded; the limit is 262144']],
    ],
  },
  {
    type: SyncType.Deltas,
    list: [
      [1043, 'u:alice', 'job-defaults', { ...jobDefaults, fax: { resolution: 'fine', destinations: [] } }],
      [1044, 'u:dave', null, null],
    ],
    seq: 1044,
  },
  { type: SyncType.Fetch, e: 'u:alice', have: [['language', 3], ['job-defaults', 6]] },
  { type: SyncType.Release, entities: ['u:erin', 'u:frank'] },
  { type: HeartbeatType.Ping, at: 1717146000123, cursor: 1044 },
  { type: HeartbeatType.Pong, at: 1717146000131, echo: 1717146000123 },
  { type: HeartbeatType.Sleep, at: 1717146000456 },
];

/** A fixture: the typed message and its encoded frame. */
export interface Fixture {
  readonly type: MessageType;
  readonly message: Message;
  readonly bytes: Uint8Array;
}

export const FIXTURES: readonly Fixture[] = MESSAGES.map((message) => ({ type: message.type, message, bytes: encodeMessage(message) }));

/** The fixture of one message type. */
export function fixture<T extends MessageType>(type: T): { message: Extract<Message, { type: T }>; bytes: Uint8Array } {
  const f = FIXTURES.find((x) => x.type === type);
  if (!f) throw new Error(`no fixture for ${type}`);
  return { message: f.message as Extract<Message, { type: T }>, bytes: f.bytes };
}
