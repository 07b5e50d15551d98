// The timeline read on PostgreSQL: one sensor's events over an inclusive time range, optionally of one
// type, or an organization's platform stream, in (event_time, seq) order either way, a page at a time.
//
// Each query is a range scan of events_timeline (oid, sid, event_time, seq), events_timeline_type
// (oid, sid, event_type, event_time, seq) or events_stream_time (oid, stream, event_time, seq) in every
// monthly partition the time range touches (the range on the partition key prunes the others); the
// ORDER BY is the index order and the partitions are range-ordered by event_time, so PostgreSQL reads
// them one after the other and stops at LIMIT: no sort, no scan of the sensor's other events.
// test/store-postgres.test.ts checks the plan with EXPLAIN.
//
// A cursor narrows the time range itself (the bound becomes the cursor's event_time, which also prunes
// partitions) and a row comparison (event_time, seq) > (t, s) skips what the previous page returned; the
// row comparison is an index condition of these indexes, so deep pages cost the same as the first one.
import type { StreamQuery, TimelineQuery } from '../store.js';
import { InvalidCursorError } from '../errors.js';
import type { TimelineCursor } from '../cursor.js';

export interface PageQuery {
  text: string;
  values: unknown[];
}

/**
 * event_time is an integer column: an inclusive bound is rounded inwards (t >= 1.5 is t >= 2) and
 * clamped to what a BIGINT and a JS number share, so any finite or infinite bound is a valid parameter.
 */
function lowerBound(t: number): number {
  if (Number.isNaN(t)) throw new RangeError('start must be a number');
  return Math.max(Math.ceil(t), Number.MIN_SAFE_INTEGER);
}

function upperBound(t: number): number {
  if (Number.isNaN(t)) throw new RangeError('end must be a number');
  return Math.min(Math.floor(t), Number.MAX_SAFE_INTEGER);
}

/** Appends the time range, the cursor condition, the order and the limit to a query on `events`. */
function finish(where: string[], values: unknown[], range: { start: number; end: number }, cursor: TimelineCursor | null, forward: boolean, fetch: number): PageQuery {
  let start = lowerBound(range.start);
  let end = upperBound(range.end);
  if (cursor) {
    // Issued by this store: integer event times. Anything else was not (SQLite cursors are the same
    // format and also only carry integer times for integer event times).
    if (!Number.isSafeInteger(cursor.time)) throw new InvalidCursorError('invalid timeline cursor');
    if (forward) start = Math.max(start, cursor.time);
    else end = Math.min(end, cursor.time);
  }
  values.push(start, end);
  where.push(`event_time >= $${values.length - 1}`, `event_time <= $${values.length}`);
  if (cursor) {
    values.push(cursor.time, cursor.seq);
    where.push(`(event_time, seq) ${forward ? '>' : '<'} ($${values.length - 1}, $${values.length})`);
  }
  const dir = forward ? 'ASC' : 'DESC';
  values.push(fetch);
  return {
    text: `SELECT seq, event_time, json FROM events WHERE ${where.join(' AND ')} ORDER BY event_time ${dir}, seq ${dir} LIMIT $${values.length}`,
    values,
  };
}

/** One page of a sensor's timeline, fetching `fetch` rows (the caller asks for one more than its limit). */
export function timelineQuery(query: TimelineQuery, cursor: TimelineCursor | null, fetch: number): PageQuery {
  const values: unknown[] = [query.oid, query.sid];
  const where = ['oid = $1', 'sid = $2'];
  if (query.eventType !== undefined) {
    values.push(query.eventType);
    where.push('event_type = $3');
  }
  return finish(where, values, query, cursor, query.forward ?? true, fetch);
}

/** One page of an organization's platform stream. Telemetry is stored with stream NULL: "event" matches nothing. */
export function streamQuery(query: StreamQuery, cursor: TimelineCursor | null, fetch: number): PageQuery {
  return finish(['oid = $1', 'stream = $2'], [query.oid, query.stream], query, cursor, query.forward ?? true, fetch);
}
