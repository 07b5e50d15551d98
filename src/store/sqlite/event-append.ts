// The event log's group commit on SQLite: one IMMEDIATE transaction with one reused prepared insert per
// event, then the sequence marks and the task rows of the same commit. Used on the store's own
// connection or on the append thread's (append-thread.ts); both run exactly this.
import type Database from 'better-sqlite3';
import type { SequenceMark, StoredEvent, TaskWrites } from '../store.js';
import { bool } from './rows.js';

/**
 * A group as the append thread receives it (packEvents): 7 primitives per event in `fields`, where an
 * event's json is the end offset of its envelope in `json`, the envelopes' UTF-8 back to back.
 */
export interface PackedEvents {
  fields: ReadonlyArray<string | number | null>;
  json: Uint8Array;
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
  // The envelope comes as a string, or as its UTF-8 bytes from a packed group: stored as TEXT either way.
  const insert = db.prepare('INSERT INTO events (oid, sid, event_type, event_time, event_id, json, stream) VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), ?)');
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
      const { fields: f, json } = events;
      let start = 0;
      for (let i = 0; i < f.length; i += EVENT_FIELDS) {
        const end = f[i + 5] as number;
        // A view of the shared bytes, no string: the thread's heap never holds the group's envelopes.
        last = Number(insert.run(f[i], f[i + 1], f[i + 2], f[i + 3], f[i + 4], json.subarray(start, end), streamColumn(f[i + 6] as string | null)).lastInsertRowid);
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

function isPacked(events: ReadonlyArray<StoredEvent> | PackedEvents): events is PackedEvents {
  return !Array.isArray(events);
}

/** Primitives per event in a packed group. */
export const EVENT_FIELDS = 7;

/**
 * Where a group's envelopes are written as UTF-8 for the append thread: shared memory the thread reads in
 * place, reused from group to group. A JS string cloned to the thread would be a new string in its heap,
 * 20,000 of them per group for its collector to copy while the commit waits.
 */
export interface EnvelopeBytes {
  bytes: Buffer;
}

/**
 * Packs a group for the append thread: the events' fields into `into` (7 primitives per event, its length
 * set to fit; one array reused for every group, since a fresh one per group is garbage V8 tends to
 * allocate straight into the old generation once groups are large), their envelopes as UTF-8 into
 * `envelopes.bytes` (replaced by a larger buffer when it is too small). Returns the bytes written.
 */
export function packEvents(events: ReadonlyArray<StoredEvent>, into: Array<string | number | null>, envelopes: EnvelopeBytes, grow: (atLeast: number) => Buffer): number {
  into.length = events.length * EVENT_FIELDS;
  let bytes = envelopes.bytes;
  let offset = 0;
  let i = 0;
  for (const e of events) {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const worst = offset + e.json.length * 3;
    if (worst > bytes.length) {
      const larger = grow(Math.max(worst, bytes.length * 2));
      bytes.copy(larger, 0, 0, offset);
      envelopes.bytes = bytes = larger;
    }
    offset += bytes.write(e.json, offset);
    into[i++] = e.oid;
    into[i++] = e.sid;
    into[i++] = e.event_type;
    into[i++] = e.event_time;
    into[i++] = e.event_id;
    into[i++] = offset;
    into[i++] = e.stream ?? null;
  }
  return offset;
}
