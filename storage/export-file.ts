/**
 * The export file of personalized data (SPEC §7): users' items, user groups' address lists and the
 * Shared buttons, in one file a technician carries from one machine to another. Layout (integers
 * big-endian):
 *
 *   magic     8 bytes   89 4D 46 50 58 0D 0A 1A — "\x89MFPX\r\n\x1a": as PNG's signature, the high bit
 *                       and the CR LF catch a 7-bit or newline-converting copy, ^Z stops `type`
 *   format    u16       EXPORT_FORMAT (1); everything after this field may change with the format
 *   hlen      u32       length of the header
 *   header    MessagePack map: software, createdAt, source {deviceId, name, role}, selection
 *                       ('all' | 'prepared'), counts {users, groups, shared, items}, bodyBytes
 *   body      MessagePack map: users [{id, items}], groups [{id, items}], shared {items} | null
 *   checksum  32 bytes  SHA-256 of everything before it
 *
 * The framing (magic, lengths, checksum, MessagePack as storage/records.ts writes it) is framed-file.ts's,
 * shared with the backup file. Reading verifies everything before it returns anything — magic, format,
 * lengths, checksum, shapes, counts, item names from the catalog, values plain data within the size
 * limit: a damaged, truncated or foreign file is IMPORT_INVALID, and a caller that applies only what
 * this returns applies nothing of such a file.
 */
import { MfpError } from '../protocol/errors.js';
import { MAX_LIST_ENTRIES, MAX_USERS } from '../protocol/limits.js';
import { fields, int, isFields, list, oneOf, str, type Fields } from '../protocol/validate.js';
import { writeFileAtomic } from './atomic-file.js';
import { checkName, entityKey, type EntityKey } from './catalog.js';
import { asBuffer, frameFile, packBody, readFileBounded, readFramed, shaped, unpack, type FileKind } from './framed-file.js';
import { assertValidChange } from './group-store.js';

/** The file's first 8 bytes. */
export const EXPORT_MAGIC: Uint8Array = Uint8Array.from([0x89, 0x4d, 0x46, 0x50, 0x58, 0x0d, 0x0a, 0x1a]);
/** The format this build writes and the only one it reads. */
export const EXPORT_FORMAT = 1;
/** Largest header accepted: it holds a few short strings and counts. */
export const MAX_EXPORT_HEADER_BYTES = 64 * 1024;
/** Largest export file written or read (read whole into memory; 1,000 users take a few MB). */
export const MAX_EXPORT_BYTES = 256 * 1024 * 1024;
/** Most user groups in one file. */
export const MAX_EXPORT_GROUPS = MAX_LIST_ENTRIES;

const MAX_LABEL_BYTES = 256;

const EXPORT: FileKind = {
  name: 'export',
  use: 'import it',
  magic: EXPORT_MAGIC,
  format: EXPORT_FORMAT,
  maxHeaderBytes: MAX_EXPORT_HEADER_BYTES,
  maxBytes: MAX_EXPORT_BYTES,
  trailerBytes: 0,
  // One code for every fault: an import either applies a whole file or nothing, whatever the reason.
  invalid: (_fault, why, cause) => invalid(why, cause),
  tooLarge: (total) => new MfpError('EXPORT_FAILED', `the export would be ${total} bytes; the limit is ${MAX_EXPORT_BYTES}`),
};

/** One user or user group: its items by catalog name. */
export interface ExportEntity {
  id: string;
  items: Record<string, unknown>;
}

/** What an export carries. */
export interface ExportBody {
  users: ExportEntity[];
  groups: ExportEntity[];
  /** The device-wide items (Shared buttons), or null when not exported. */
  shared: { items: Record<string, unknown> } | null;
}

/** How many of each the body holds; the header repeats them and reading checks they agree. */
export interface ExportCounts {
  users: number;
  groups: number;
  /** 1 when the Shared buttons are in the file, else 0. */
  shared: number;
  items: number;
}

/** Where and when a file was made. */
export interface ExportHeader {
  software: string;
  createdAt: number;
  source: { deviceId: string; name: string; role: string };
  /** `all`: everything the machine held; `prepared`: a server-client's prepared selection. */
  selection: 'all' | 'prepared';
  /**
   * An address-list file (manual: "export personal address lists or user group address lists as
   * individual files"): `personal`, only users' `address-list`; `groups`, only user groups'. Absent
   * in a batch file. A build before it reads such a file as a batch file holding only those items.
   */
  addressList?: AddressListKind;
  counts: ExportCounts;
}

/** The two kinds of address-list file: [Personal Address List (All)], [User Group Address List (All)]. */
export const ADDRESS_LIST_KINDS = ['personal', 'groups'] as const;
export type AddressListKind = (typeof ADDRESS_LIST_KINDS)[number];

/** A verified export file. */
export interface ExportFile {
  format: number;
  header: ExportHeader;
  body: ExportBody;
}

/** Counts of a body. */
export function countsOf(body: ExportBody): ExportCounts {
  const items = (e: { items: Record<string, unknown> }) => Object.keys(e.items).length;
  return {
    users: body.users.length,
    groups: body.groups.length,
    shared: body.shared ? 1 : 0,
    items: [...body.users, ...body.groups].reduce((n, e) => n + items(e), body.shared ? items(body.shared) : 0),
  };
}

/** The body as changes: one `{e, n, val}` per item, users first. */
export function changesOf(body: ExportBody): { e: EntityKey; n: string; val: unknown }[] {
  const out: { e: EntityKey; n: string; val: unknown }[] = [];
  const add = (e: EntityKey, items: Record<string, unknown>) => {
    for (const [n, val] of Object.entries(items)) out.push({ e, n, val });
  };
  for (const u of body.users) add(entityKey('user', u.id), u.items);
  for (const g of body.groups) add(entityKey('group', g.id), g.items);
  if (body.shared) add(entityKey('device'), body.shared.items);
  return out;
}

/** Encodes an export file. The body is checked as reading would check it, so what is written reads back. */
export function encodeExportFile(header: Omit<ExportHeader, 'counts'>, body: ExportBody): Uint8Array {
  try {
    checkBody(body);
  } catch (err) {
    throw new MfpError('EXPORT_FAILED', `the data holds what an import would refuse: ${(err as Error).message}`, { cause: err });
  }
  return frameFile(EXPORT, { ...header, counts: countsOf(body) }, packBody(body));
}

/** Decodes and verifies an export file; anything wrong with it is IMPORT_INVALID. */
export function decodeExportFile(bytes: Uint8Array): ExportFile {
  const { format, header, body: bodyBytes } = readFramed(EXPORT, asBuffer(bytes), readHeader);
  const body = readBody(unpack(EXPORT, bodyBytes, 'body'));
  const counts = countsOf(body);
  for (const k of ['users', 'groups', 'shared', 'items'] as const) {
    if (counts[k] !== header.counts[k]) throw invalid(`the header counts ${header.counts[k]} ${k}, the body holds ${counts[k]}`);
  }
  if (header.addressList) {
    // An address-list file holds address lists of its kind and nothing else.
    const [holds, other] = header.addressList === 'personal' ? [body.users, body.groups] : [body.groups, body.users];
    const extra = holds.flatMap((x) => Object.keys(x.items).filter((n) => n !== 'address-list'));
    if (other.length > 0 || body.shared !== null || extra.length > 0) {
      throw invalid(`a ${header.addressList === 'personal' ? 'personal' : 'user group'} address-list file holds other data`);
    }
  }
  return { format, header, body };
}

/**
 * Writes an export file atomically (writeFileAtomic: 0600, fsync, rename). A failure leaves no
 * temporary file and the target as it was; it is EXPORT_FAILED.
 */
export async function writeExportFile(path: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeFileAtomic(path, bytes);
  } catch (err) {
    throw new MfpError('EXPORT_FAILED', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads and verifies an export file; a file that cannot be read is IMPORT_INVALID too. */
export async function readExportFile(path: string): Promise<ExportFile> {
  let bytes: Buffer;
  try {
    bytes = await readFileBounded(EXPORT, path);
  } catch (err) {
    if (err instanceof MfpError) throw err;
    throw new MfpError('IMPORT_INVALID', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return decodeExportFile(bytes);
}

// ---- reading ---------------------------------------------------------------------------------------

function invalid(why: string, cause?: unknown): MfpError {
  return new MfpError('IMPORT_INVALID', `not a valid export file: ${why}`, cause === undefined ? {} : { cause });
}

function readHeader(o: Fields): ExportHeader {
  const t = 'header';
  const source = fields(t, o, 'source');
  const counts = fields(t, o, 'counts');
  return {
    software: str(t, o, 'software', MAX_LABEL_BYTES),
    createdAt: int(t, o, 'createdAt'),
    source: { deviceId: str(t, source, 'deviceId'), name: str(t, source, 'name', MAX_LABEL_BYTES), role: str(t, source, 'role') },
    selection: oneOf(t, o, 'selection', ['all', 'prepared'] as const),
    ...(o.addressList === undefined ? {} : { addressList: oneOf(t, o, 'addressList', ADDRESS_LIST_KINDS) }),
    counts: {
      users: int('header.counts', counts, 'users', 0, MAX_USERS),
      groups: int('header.counts', counts, 'groups', 0, MAX_EXPORT_GROUPS),
      shared: int('header.counts', counts, 'shared', 0, 1),
      items: int('header.counts', counts, 'items'),
    },
  };
}

function readBody(o: unknown): ExportBody {
  const body = shaped(EXPORT, () => {
    if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'the body must be a map');
    const entities = (k: string, max: number): ExportEntity[] =>
      list('body', o, k, max).map((x, i) => {
        if (!isFields(x)) throw new MfpError('MESSAGE_INVALID', `body.${k}[${i}] must be a map`);
        return { id: str(`body.${k}[${i}]`, x, 'id'), items: fields(`body.${k}[${i}]`, x, 'items') };
      });
    const shared = o.shared;
    if (shared !== null && !isFields(shared)) throw new MfpError('MESSAGE_INVALID', 'body.shared must be a map or nil');
    return {
      users: entities('users', MAX_USERS),
      groups: entities('groups', MAX_EXPORT_GROUPS),
      shared: shared === null ? null : { items: fields('body.shared', shared, 'items') },
    };
  });
  checkBody(body);
  return body;
}

/** Names, duplicates and every item: catalog name, plain data, size limit — as a local write checks them. */
function checkBody(body: ExportBody): void {
  for (const [kind, list] of [['user', body.users], ['group', body.groups]] as const) {
    const seen = new Set<string>();
    for (const entity of list) {
      try {
        checkName(entity.id, kind === 'user' ? 'user name' : 'group id');
      } catch (err) {
        throw invalid(`${kind} ${JSON.stringify(entity.id)}: ${(err as Error).message}`, err);
      }
      if (seen.has(entity.id)) throw invalid(`${kind} ${JSON.stringify(entity.id)} appears twice`);
      seen.add(entity.id);
      checkItems(entityKey(kind, entity.id), entity.items);
    }
  }
  if (body.shared) checkItems(entityKey('device'), body.shared.items);
}

function checkItems(e: EntityKey, items: Record<string, unknown>): void {
  for (const [n, val] of Object.entries(items)) {
    try {
      assertValidChange({ e, n, val });
    } catch (err) {
      const code = err instanceof MfpError ? ` (${err.code})` : '';
      throw invalid(`${e} ${n}: ${(err as Error).message}${code}`, err);
    }
  }
}
