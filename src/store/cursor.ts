// Opaque paging cursors: base64url of a small JSON object. Callers must treat them as opaque; decoding
// validates the shape so a mangled or foreign cursor is an InvalidCursorError, never a wrong page.
// Backend-neutral: the SQLite and PostgreSQL stores page in the same (key, tie-breaker) orders, so both
// issue and accept the same cursors.
import { InvalidCursorError } from './errors.js';

/** Position after the last row of a timeline page: its (event_time, seq), and the direction it was read in. */
export interface TimelineCursor {
  time: number;
  seq: number;
  forward: boolean;
}

/** Position after the last row of a sensor list page. */
export interface SensorCursor {
  sid: string;
}

function encode(value: object): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function decode(cursor: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError('invalid cursor');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidCursorError('invalid cursor');
  return value as Record<string, unknown>;
}

export function encodeTimelineCursor(c: TimelineCursor): string {
  return encode({ k: 't', t: c.time, s: c.seq, f: c.forward ? 1 : 0 });
}

export function decodeTimelineCursor(cursor: string, forward: boolean): TimelineCursor {
  const v = decode(cursor);
  if (v.k !== 't' || typeof v.t !== 'number' || !Number.isFinite(v.t) || !Number.isSafeInteger(v.s) || (v.f !== 0 && v.f !== 1)) {
    throw new InvalidCursorError('invalid timeline cursor');
  }
  if ((v.f === 1) !== forward) throw new InvalidCursorError('timeline cursor was issued for the other direction');
  return { time: v.t, seq: v.s as number, forward };
}

export function encodeSensorCursor(c: SensorCursor): string {
  return encode({ k: 's', s: c.sid });
}

export function decodeSensorCursor(cursor: string): SensorCursor {
  const v = decode(cursor);
  if (v.k !== 's' || typeof v.s !== 'string' || v.s === '') throw new InvalidCursorError('invalid sensor list cursor');
  return { sid: v.s };
}

/** Position after the last artifact of a page: its (created, log_id). Same format as the SQLite artifact cursor. */
export interface ArtifactCursor {
  created: number;
  logId: string;
}

export function encodeArtifactCursor(c: ArtifactCursor): string {
  return encode({ k: 'a', t: c.created, id: c.logId });
}

export function decodeArtifactCursor(cursor: string): ArtifactCursor {
  const v = decode(cursor);
  if (v.k !== 'a' || !Number.isSafeInteger(v.t) || typeof v.id !== 'string') throw new InvalidCursorError('invalid artifact cursor');
  return { created: v.t as number, logId: v.id };
}
