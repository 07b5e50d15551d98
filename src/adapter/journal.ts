// The disk buffer's append-only journal file: one framed msgpack record per buffered message, release
// (everything through x is acknowledged or dropped) or source position. A frame is
// [body length u32 BE][crc32 of body u32 BE][body]; a torn or corrupt tail, left by a process that died in
// the middle of a write, ends the replay and is cut off, and everything before it is kept.
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import type { MessageFields } from './message.js';

export type JournalRecord =
  /** A message, and the position of its source after it (absent when rewritten by a compaction). */
  | { k: 'm'; x: number; f: MessageFields; c?: [string, unknown] }
  /** Every message with x' <= x is released: acknowledged by the cloud, or dropped. */
  | { k: 'r'; x: number }
  /** A source moved without producing a message (a rotated file was left for its successor). */
  | { k: 'c'; c: [string, unknown] };

const FRAME_HEADER_BYTES = 8;
/** No record is this large (messages are bounded far below); a larger length is corruption. */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encodeRecord(record: JournalRecord): Buffer {
  const body = packr.pack(record);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.writeUInt32BE(crc32(body), 4);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export interface JournalContents {
  records: JournalRecord[];
  /** Bytes of whole, valid records from the start of the file. */
  validBytes: number;
  /** Size of the file; more than validBytes when the tail is torn or corrupt. */
  fileBytes: number;
  /** Encoded size of each record, in the order of `records`. */
  recordBytes: number[];
}

/** Reads every valid record of a journal file; a missing file is an empty journal. */
export function readJournal(file: string): JournalContents {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], validBytes: 0, fileBytes: 0, recordBytes: [] };
    throw err;
  }
  const records: JournalRecord[] = [];
  const recordBytes: number[] = [];
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= data.length) {
    const length = data.readUInt32BE(pos);
    const crc = data.readUInt32BE(pos + 4);
    const end = pos + FRAME_HEADER_BYTES + length;
    if (length > MAX_RECORD_BYTES || end > data.length) break;
    const body = data.subarray(pos + FRAME_HEADER_BYTES, end);
    if (crc32(body) !== crc) break;
    let record: unknown;
    try {
      record = packr.unpack(body);
    } catch {
      break;
    }
    if (!isRecord(record)) break;
    records.push(record);
    recordBytes.push(end - pos);
    pos = end;
  }
  return { records, validBytes: pos, fileBytes: data.length, recordBytes };
}

function isRecord(value: unknown): value is JournalRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  const cursorOk = (c: unknown): boolean => Array.isArray(c) && c.length === 2 && typeof c[0] === 'string';
  switch (r.k) {
    case 'm':
      return Number.isSafeInteger(r.x) && typeof r.f === 'object' && r.f !== null && (r.c === undefined || cursorOk(r.c));
    case 'r':
      return Number.isSafeInteger(r.x);
    case 'c':
      return cursorOk(r.c);
    default:
      return false;
  }
}
