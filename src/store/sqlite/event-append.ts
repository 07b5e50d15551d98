// The event log's group commit on SQLite: one IMMEDIATE transaction with one reused prepared insert per
// event, then the sequence marks and the task rows of the same commit. Used on the store's own
// connection or on the append thread's (append-thread.ts); both run exactly this.
import type Database from 'better-sqlite3';
import type { SequenceMark, StoredEvent, TaskWrites } from '../store.js';
import { bool } from './rows.js';

/**
 * A group as the append thread receives it (packEvents): per event, EVENT_FIELDS numbers in `fields` —
 * indexes into `strings` of its oid, sid, event_type and stream (-1 for null), its event_time, and the
 * end offsets in `bytes` of its event_id and its envelope, the UTF-8 of both back to back.
 */
export interface PackedEvents {
  count: number;
  strings: ReadonlyArray<string>;
  fields: Float64Array;
  bytes: Uint8Array;
}

/**
 * Runs the group commit; returns the log position of the group's first event when its events took
 * consecutive positions (they do: one writer, one transaction), null when there were none or they did not.
 */
export type AppendTransaction = (events: ReadonlyArray<StoredEvent> | PackedEvents, marks: ReadonlyArray<SequenceMark>, tasks: TaskWrites | undefined) => number | null;

/** Prepares the statements of the group commit (the tables must exist: call after migrating). */
export function prepareAppend(db: Database.Database): AppendTransaction {
  const insertTask = db.prepare(
    'INSERT INTO tasks (task_id, oid, sid, command, investigation_id, created, expires, state, sent_at, received_at, answered_at, error, answer)' +
      ' VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  // One statement for every kind of move: the new state's time column is set, the others kept.
  const updateTask = db.prepare(
    'UPDATE tasks SET state = ?, sent_at = COALESCE(?, sent_at), received_at = COALESCE(?, received_at), answered_at = COALESCE(?, answered_at),' +
      ' error = CASE WHEN ? THEN ? ELSE error END, answer = CASE WHEN ? THEN ? ELSE answer END' +
      ' WHERE task_id = ? AND sid = ? AND state IN (SELECT value FROM json_each(?))',
  );
  // event_id and the envelope come as strings, or as UTF-8 bytes from a packed group: stored as TEXT either way.
  const insert = db.prepare('INSERT INTO events (oid, sid, event_type, event_time, event_id, json, stream) VALUES (?, ?, ?, ?, CAST(? AS TEXT), CAST(? AS TEXT), ?)');
  // Same stream: only a higher seq moves the mark. Another stream_id (a sensor that lost its
  // buffer and started over) replaces it whatever its seq.
  const mark = db.prepare(
    'INSERT INTO sequence_marks (sid, stream_id, seq) VALUES (?, ?, ?)' +
      ' ON CONFLICT (sid) DO UPDATE SET stream_id = excluded.stream_id, seq = excluded.seq' +
      ' WHERE sequence_marks.stream_id <> excluded.stream_id OR excluded.seq > sequence_marks.seq',
  );
  const setIsolated = db.prepare('UPDATE sensors SET isolated = ? WHERE sid = ?');
  const announceArtifact = db.prepare('UPDATE artifacts SET announced = 1 WHERE log_id = ?');
  const announceExport = db.prepare('UPDATE artifact_exports SET announced = 1 WHERE export_id = ?');
  // Telemetry (the "event" stream) is read per sensor; only platform streams are indexed by stream.
  const streamColumn = (stream: string | null | undefined): string | null => (stream === undefined || stream === null || stream === 'event' ? null : stream);
  const tx = db.transaction((events: ReadonlyArray<StoredEvent> | PackedEvents, marks: ReadonlyArray<SequenceMark>, tasks: TaskWrites | undefined): number | null => {
    let first = 0;
    let last = 0;
    let count = 0;
    if (isPacked(events)) {
      const { count: n, strings, fields: f, bytes } = events;
      let start = 0;
      for (let k = 0, i = 0; k < n; k++, i += EVENT_FIELDS) {
        const sid = f[i + 1]!;
        const stream = f[i + 6]!;
        const idEnd = f[i + 4]!;
        const end = f[i + 5]!;
        // Views of the shared bytes, no strings: the thread's heap never holds the group's envelopes.
        last = Number(
          insert.run(
            strings[f[i]!], sid < 0 ? null : strings[sid], strings[f[i + 2]!], f[i + 3], bytes.subarray(start, idEnd), bytes.subarray(idEnd, end),
            stream < 0 ? null : streamColumn(strings[stream]),
          ).lastInsertRowid,
        );
        if (first === 0) first = last;
        start = end;
        count++;
      }
    } else {
      for (const e of events) {
        last = Number(insert.run(e.oid, e.sid, e.event_type, e.event_time, e.event_id, e.json, streamColumn(e.stream)).lastInsertRowid);
        if (first === 0) first = last;
        count++;
      }
    }
    for (const m of marks) mark.run(m.sid, m.stream_id, m.seq);
    if (tasks) {
      for (const t of tasks.create ?? []) {
        insertTask.run(t.task_id, t.oid, t.sid, t.command, t.investigation_id, t.created, t.expires, t.state, t.sent_at, t.received_at, t.answered_at, t.error, t.answer);
      }
      for (const u of tasks.update ?? []) {
        const at = (state: string) => (u.to.state === state ? u.to.at : null);
        const moved = updateTask.run(
          u.to.state, at('sent'), at('received'), at('answered'),
          bool(u.to.error !== undefined), u.to.error ?? null, bool(u.to.answer !== undefined), u.to.answer ?? null,
          u.task_id, u.sid, JSON.stringify(u.from),
        ).changes > 0;
        if (moved && u.isolated !== undefined) setIsolated.run(bool(u.isolated), u.sid);
      }
      for (const id of tasks.announce?.artifacts ?? []) announceArtifact.run(id);
      for (const id of tasks.announce?.exports ?? []) announceExport.run(id);
    }
    return count > 0 && last - first + 1 === count ? first : null;
  });
  return (events, marks, tasks) => tx.immediate(events, marks, tasks);
}

export function isPacked(events: ReadonlyArray<StoredEvent> | PackedEvents): events is PackedEvents {
  return !Array.isArray(events);
}

/** Numbers per event in a packed group. */
export const EVENT_FIELDS = 7;

/**
 * Shared memory a group is packed into for the append thread, which reads it in place: reused from group
 * to group, replaced by larger buffers when a group needs more. Cloned to the thread, every event's
 * strings would be new strings in its heap (20,000 envelopes per full group for its collector to copy
 * while the commit waits), and cloning them one by one costs the main thread more than writing them.
 */
export interface GroupBuffers {
  bytes: Buffer;
  fields: Float64Array;
}

/** What packEvents wrote into the group's buffers. */
export interface PackedGroup {
  count: number;
  /** The distinct oid, sid, event_type and stream values, indexed from the fields. */
  strings: string[];
  /** Bytes written into `bytes`. */
  bytes: number;
}

/**
 * Packs a group for the append thread into `buffers` (PackedEvents). `intern` is a map the caller reuses
 * from group to group (emptied here); `grow` makes a larger shared buffer of at least `size` bytes.
 */
export function packEvents(events: ReadonlyArray<StoredEvent>, buffers: GroupBuffers, intern: Map<string, number>, grow: (size: number) => Buffer): PackedGroup {
  intern.clear();
  const strings: string[] = [];
  const index = (value: string): number => {
    let i = intern.get(value);
    if (i === undefined) {
      i = strings.push(value) - 1;
      intern.set(value, i);
    }
    return i;
  };
  if (buffers.fields.length < events.length * EVENT_FIELDS) {
    const size = Math.max(events.length * EVENT_FIELDS, buffers.fields.length * 2) * Float64Array.BYTES_PER_ELEMENT;
    buffers.fields = new Float64Array(grow(size).buffer, 0, size / Float64Array.BYTES_PER_ELEMENT);
  }
  const f = buffers.fields;
  let bytes = buffers.bytes;
  let offset = 0;
  let i = 0;
  for (const e of events) {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const worst = offset + (e.event_id.length + e.json.length) * 3;
    if (worst > bytes.length) {
      const larger = grow(Math.max(worst, bytes.length * 2));
      bytes.copy(larger, 0, 0, offset);
      buffers.bytes = bytes = larger;
    }
    f[i] = index(e.oid);
    f[i + 1] = e.sid === null ? -1 : index(e.sid);
    f[i + 2] = index(e.event_type);
    f[i + 3] = e.event_time;
    offset += bytes.write(e.event_id, offset);
    f[i + 4] = offset;
    offset += bytes.write(e.json, offset);
    f[i + 5] = offset;
    f[i + 6] = e.stream === undefined || e.stream === null ? -1 : index(e.stream);
    i += EVENT_FIELDS;
  }
  return { count: events.length, strings, bytes: offset };
}
