// The event log's group commit on SQLite: one IMMEDIATE transaction with one reused prepared insert per
// event, then the sequence marks and the task rows of the same commit. Used on the store's own
// connection or on the append thread's (append-thread.ts); both run exactly this.
import type Database from 'better-sqlite3';
import type { SequenceMark, StoredEvent, TaskWrites } from '../store.js';
import { bool } from './rows.js';

/**
 * Runs the group commit; returns the log position of the group's first event when its events took
 * consecutive positions (they do: one writer, one transaction), null when there were none or they did not.
 */
export type AppendTransaction = (events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks: TaskWrites | undefined) => number | null;

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
  const insert = db.prepare('INSERT INTO events (oid, sid, event_type, event_time, event_id, json, stream) VALUES (?, ?, ?, ?, ?, ?, ?)');
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
  const tx = db.transaction((events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks: TaskWrites | undefined): number | null => {
    let first = 0;
    let last = 0;
    for (const e of events) {
      // Telemetry (the "event" stream) is read per sensor; only platform streams are indexed by stream.
      const stream = e.stream === undefined || e.stream === null || e.stream === 'event' ? null : e.stream;
      last = Number(insert.run(e.oid, e.sid, e.event_type, e.event_time, e.event_id, e.json, stream).lastInsertRowid);
      if (first === 0) first = last;
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
    return events.length > 0 && last - first + 1 === events.length ? first : null;
  });
  return (events, marks, tasks) => tx.immediate(events, marks, tasks);
}

/** Events as one flat array of primitives, 7 per event: far cheaper to pass to a thread than objects. */
export const EVENT_FIELDS = 7;

/**
 * Writes the events into `into` as one flat array of primitives, 7 per event (its length set to fit).
 * The caller reuses one array for every group: a fresh array per group is garbage V8 tends to allocate
 * straight into the old generation once groups are large, where only a full collection frees it.
 */
export function flattenEvents(events: ReadonlyArray<StoredEvent>, into: Array<string | number | null> = []): Array<string | number | null> {
  into.length = events.length * EVENT_FIELDS;
  let i = 0;
  for (const e of events) {
    into[i++] = e.oid;
    into[i++] = e.sid;
    into[i++] = e.event_type;
    into[i++] = e.event_time;
    into[i++] = e.event_id;
    into[i++] = e.json;
    into[i++] = e.stream ?? null;
  }
  return into;
}

export function unflattenEvents(flat: ReadonlyArray<string | number | null>): StoredEvent[] {
  const events: StoredEvent[] = new Array<StoredEvent>(flat.length / EVENT_FIELDS);
  for (let i = 0, n = 0; i < flat.length; i += EVENT_FIELDS, n++) {
    events[n] = {
      oid: flat[i] as string,
      sid: flat[i + 1] as string | null,
      event_type: flat[i + 2] as string,
      event_time: flat[i + 3] as number,
      event_id: flat[i + 4] as string,
      json: flat[i + 5] as string,
      stream: flat[i + 6] as StoredEvent['stream'],
    };
  }
  return events;
}
