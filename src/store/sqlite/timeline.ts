// The timeline read: one sensor's events over an inclusive time range, optionally of one type, in
// (event_time, seq) order either way. Each shape of the query is one range scan of
// events_by_sensor_time_type (sid, event_time, event_type, then the rowid `seq`): the type, when given,
// is tested on the index entry before the row is read, and rows tied on event_time (ordered by type in
// the index) are put in seq order by a sort of each tie group, never of the whole range.
// test/store-sqlite.test.ts checks this with EXPLAIN QUERY PLAN.
//
// INDEXED BY pins the index, so a dropped index is a prepare-time error instead of a silent full scan.
//
// A cursor narrows the range itself (the bound becomes the cursor's event_time) and only the rows tied
// with it at that event_time are skipped by seq, so deep pages cost the same as the first one.
import type { StreamQuery, TimelineQuery } from '../store.js';
import type { TimelineCursor } from '../cursor.js';

export interface TimelineShape {
  eventType: boolean;
  forward: boolean;
  cursor: boolean;
}

export function timelineSql(shape: TimelineShape): string {
  const dir = shape.forward ? 'ASC' : 'DESC';
  const after = shape.forward ? '>' : '<';
  return (
    'SELECT seq, event_time, json FROM events INDEXED BY events_by_sensor_time_type WHERE sid = ?' +
    (shape.eventType ? ' AND event_type = ?' : '') +
    ' AND event_time >= ? AND event_time <= ? AND oid = ?' +
    (shape.cursor ? ` AND (event_time ${after} ? OR seq ${after} ?)` : '') +
    ` ORDER BY event_time ${dir}, seq ${dir} LIMIT ?`
  );
}

/** Parameters for timelineSql() of the same shape, fetching `fetch` rows. */
export function timelineParams(query: TimelineQuery, cursor: TimelineCursor | null, fetch: number): unknown[] {
  const params: unknown[] = [query.sid];
  if (query.eventType !== undefined) params.push(query.eventType);
  let { start, end } = query;
  if (cursor) {
    if (cursor.forward) start = Math.max(start, cursor.time);
    else end = Math.min(end, cursor.time);
  }
  params.push(start, end, query.oid);
  if (cursor) params.push(cursor.time, cursor.seq);
  params.push(fetch);
  return params;
}

/** An organization's platform stream over a time range: one range scan of events_by_org_stream_time. */
export function streamSql(shape: { forward: boolean; cursor: boolean }): string {
  const dir = shape.forward ? 'ASC' : 'DESC';
  const after = shape.forward ? '>' : '<';
  return (
    'SELECT seq, event_time, json FROM events INDEXED BY events_by_org_stream_time' +
    ' WHERE oid = ? AND stream = ? AND event_time >= ? AND event_time <= ? AND stream IS NOT NULL' +
    (shape.cursor ? ` AND (event_time ${after} ? OR seq ${after} ?)` : '') +
    ` ORDER BY event_time ${dir}, seq ${dir} LIMIT ?`
  );
}

export function streamParams(query: StreamQuery, cursor: TimelineCursor | null, fetch: number): unknown[] {
  let { start, end } = query;
  if (cursor) {
    if (cursor.forward) start = Math.max(start, cursor.time);
    else end = Math.min(end, cursor.time);
  }
  const params: unknown[] = [query.oid, query.stream, start, end];
  if (cursor) params.push(cursor.time, cursor.seq);
  params.push(fetch);
  return params;
}
