/**
 * The framing that mfpsync's files share — the export file (export-file.ts) and the server's backup
 * (backup-file.ts). Layout (integers big-endian):
 *
 *   magic     8 bytes   89 4D 46 50 <kind> 0D 0A 1A — "\x89MFP?\r\n\x1a": as PNG's signature, the high bit
 *                       and the CR LF catch a 7-bit or newline-converting copy, ^Z stops `type`; the
 *                       fifth byte tells the kinds apart
 *   format    u16       the kind's format version; everything after this field may change with it
 *   hlen      u32       length of the header
 *   header    MessagePack map: the kind's fields and bodyBytes, the body's length
 *   body      MessagePack value
 *   checksum  32 bytes  SHA-256 of everything before it
 *   trailer   the kind's fixed-length end (a backup's signature; nothing for an export)
 *
 * MessagePack as storage/records.ts writes it: records off, maps as plain objects, so a file decodes
 * the same in any later build. Reading checks in the order a damaged file is best explained: magic
 * (another program's file), format, lengths (truncated, trailing bytes), checksum (damaged); only then
 * does the kind look at the body. Header and total are bounded before anything is allocated for them.
 */
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { Packr } from 'msgpackr';
import { hasProtoKey } from '../protocol/codec.js';
import { MfpError } from '../protocol/errors.js';
import { int, isFields, type Fields } from '../protocol/validate.js';

/** Why a file was refused, most telling first; each kind maps these to its own error. */
export type FileFault = 'foreign-program' | 'format' | 'truncated' | 'damaged' | 'shape';

/** What sets one kind of file apart. */
export interface FileKind {
  /** Names the kind in messages: `export`, `backup`. */
  name: string;
  /** What to do with a file of a newer format, for the message: `import it`, `restore it`. */
  use: string;
  magic: Uint8Array;
  /** The format this build writes (and the newest it reads). */
  format: number;
  /** The oldest format it still reads (default: only `format`); the kind's header reader gets the format. */
  oldestFormat?: number;
  maxHeaderBytes: number;
  maxBytes: number;
  /** Fixed length of what follows the checksum. */
  trailerBytes: number;
  /** The error a reader throws; `why` is a sentence fragment without the kind's prefix. */
  invalid(fault: FileFault, why: string, cause?: unknown): Error;
  /** The error a writer throws when the file would exceed maxBytes. */
  tooLarge(total: number): Error;
}

/** A file's head: its format and its header, as the kind's reader shaped it. */
export interface FileHead<H> {
  format: number;
  header: H;
  /** Offset of the body. */
  bodyStart: number;
  bodyBytes: number;
}

/** Magic, format and header length. */
export const PREAMBLE_BYTES = 8 + 2 + 4;
/** The SHA-256 after the body. */
export const CHECKSUM_BYTES = 32;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false, int64AsType: 'number' });

/** SHA-256 of some bytes. */
function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** Encodes a body as the files hold it. */
export function packBody(body: unknown): Buffer {
  return packr.pack(body);
}

/**
 * Frames a header and an encoded body, with the checksum; the trailer is left zero for the caller
 * to fill. The size limit is checked before the file is allocated.
 */
export function frameFile(kind: FileKind, header: Fields, body: Uint8Array): Buffer {
  const headerBytes = packr.pack({ ...header, bodyBytes: body.length });
  if (headerBytes.length > kind.maxHeaderBytes) throw new TypeError(`the ${kind.name} header would be ${headerBytes.length} bytes; at most ${kind.maxHeaderBytes}`);
  const total = PREAMBLE_BYTES + headerBytes.length + body.length + CHECKSUM_BYTES + kind.trailerBytes;
  if (total > kind.maxBytes) throw kind.tooLarge(total);
  const out = Buffer.alloc(total);
  out.set(kind.magic, 0);
  out.writeUInt16BE(kind.format, kind.magic.length);
  out.writeUInt32BE(headerBytes.length, kind.magic.length + 2);
  out.set(headerBytes, PREAMBLE_BYTES);
  const contentEnd = PREAMBLE_BYTES + headerBytes.length + body.length;
  out.set(body, PREAMBLE_BYTES + headerBytes.length);
  out.set(sha256(out.subarray(0, contentEnd)), contentEnd);
  return out;
}

/** Views any Uint8Array as a Buffer, without copying. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Checks the preamble — magic, format, header length within bounds — of a file or of its first bytes. */
export function readPreamble(kind: FileKind, buf: Buffer): { format: number; headerLength: number } {
  const magicLength = Math.min(buf.length, kind.magic.length);
  if (!buf.subarray(0, magicLength).equals(kind.magic.subarray(0, magicLength))) {
    throw kind.invalid('foreign-program', `not an mfpsync ${kind.name} file (its first bytes are not the ${kind.name} magic)`);
  }
  if (buf.length < PREAMBLE_BYTES) throw kind.invalid('truncated', `truncated: ${buf.length} bytes, not even the file's preamble`);
  const format = buf.readUInt16BE(kind.magic.length);
  if (format > kind.format || format < (kind.oldestFormat ?? kind.format)) {
    throw kind.invalid('format', format > kind.format
      ? `format version ${format} is newer than this build reads (${kind.format}): ${kind.use} with a newer mfpsync`
      : `unknown format version ${format}`);
  }
  const headerLength = buf.readUInt32BE(kind.magic.length + 2);
  if (headerLength > kind.maxHeaderBytes) throw kind.invalid('damaged', `the header claims ${headerLength} bytes; at most ${kind.maxHeaderBytes}`);
  return { format, headerLength };
}

/**
 * Reads the preamble and the header, shaped by the kind's `read`; `buf` may end anywhere after the
 * header. With `whole` (buf is meant to be the whole file), a header that cannot be read is put down to
 * damage unless the checksum at the end of buf holds — then the writer made it so, and it is 'shape'.
 */
export function readHead<H>(kind: FileKind, buf: Buffer, read: (header: Fields, format: number) => H, { whole }: { whole: boolean }): FileHead<H> {
  const { format, headerLength } = readPreamble(kind, buf);
  const bodyStart = PREAMBLE_BYTES + headerLength;
  if (buf.length < bodyStart) throw kind.invalid('truncated', `truncated: ${buf.length} bytes end inside the header`);
  try {
    const o = unpack(kind, buf.subarray(PREAMBLE_BYTES, bodyStart), 'header');
    return shaped(kind, () => {
      if (!isFields(o)) throw new MfpError('MESSAGE_INVALID', 'the header must be a map');
      return { format, header: read(o, format), bodyStart, bodyBytes: int('header', o, 'bodyBytes', 0, kind.maxBytes) };
    });
  } catch (err) {
    if (whole && !checksumHolds(kind, buf, buf.length - kind.trailerBytes - CHECKSUM_BYTES)) throw damaged(kind, err);
    throw err;
  }
}

/**
 * Reads a whole file's head and checks its length and checksum; returns the head and the body's bytes
 * (still encoded: the kind may check its trailer before it decodes them).
 */
export function readFramed<H>(kind: FileKind, buf: Buffer, read: (header: Fields, format: number) => H): FileHead<H> & { body: Buffer } {
  const head = readHead(kind, buf, read, { whole: true });
  const contentEnd = head.bodyStart + head.bodyBytes;
  const expected = contentEnd + CHECKSUM_BYTES + kind.trailerBytes;
  if (buf.length < expected) throw kind.invalid('truncated', `truncated: ${buf.length} of ${expected} bytes`);
  if (buf.length > expected) throw kind.invalid('damaged', `${buf.length - expected} bytes after the end of the file's content`);
  if (!checksumHolds(kind, buf, contentEnd)) throw damaged(kind);
  return { ...head, body: buf.subarray(head.bodyStart, contentEnd) };
}

/** Decodes one complete MessagePack value; a `__proto__` map key is refused. */
export function unpack(kind: FileKind, bytes: Buffer, part: string): unknown {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (err) {
    throw kind.invalid('shape', `its ${part} is not one complete MessagePack value (${(err as Error).message})`, err);
  }
  // msgpackr renames a `__proto__` key to `__proto_`: a silent change of data. Refused instead; a
  // `__proto__` inside a string is text (and a real `__proto_` key is a key like any other).
  if (hasProtoKey(bytes)) throw kind.invalid('shape', `its ${part} holds the key __proto__`);
  return value;
}

/** Runs a validate.ts reader; its MESSAGE_INVALID (or any coded error) becomes the kind's 'shape' error. */
export function shaped<T>(kind: FileKind, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof MfpError) throw kind.invalid('shape', err.message, err);
    throw err;
  }
}

/**
 * Reads a file of a kind from disk: a regular file within the kind's size bound, with the kind's
 * preamble. Node's I/O errors (ENOENT, EACCES, EIO …) are rethrown as they are.
 */
export async function readFileBounded(kind: FileKind, path: string): Promise<Buffer> {
  const s = await stat(path);
  if (!s.isFile()) throw kind.invalid('foreign-program', `${path} is not a file`);
  if (s.size > kind.maxBytes) {
    // Another program's large file is foreign rather than damaged: its first bytes tell.
    const fh = await open(path, 'r');
    try {
      const head = Buffer.alloc(PREAMBLE_BYTES);
      const { bytesRead } = await fh.read(head, 0, PREAMBLE_BYTES, 0);
      readPreamble(kind, head.subarray(0, bytesRead));
    } finally {
      await fh.close();
    }
    throw kind.invalid('damaged', `${path} is ${s.size} bytes; a ${kind.name} file is at most ${kind.maxBytes}`);
  }
  const bytes = await readFile(path);
  // The file may have grown since stat: the bound holds for what was read.
  if (bytes.length > kind.maxBytes) throw kind.invalid('damaged', `${path} is over ${kind.maxBytes} bytes`);
  readPreamble(kind, bytes);
  return bytes;
}

function checksumHolds(kind: FileKind, buf: Buffer, contentEnd: number): boolean {
  if (contentEnd < PREAMBLE_BYTES || contentEnd + CHECKSUM_BYTES > buf.length) return false;
  return sha256(buf.subarray(0, contentEnd)).equals(buf.subarray(contentEnd, contentEnd + CHECKSUM_BYTES));
}

function damaged(kind: FileKind, cause?: unknown): Error {
  return kind.invalid('damaged', 'the checksum does not match the content: the file is damaged', cause);
}
