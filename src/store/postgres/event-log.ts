// The event log on PostgreSQL: appending events with their log positions, and the group commit of
// appendEvents (events + sequence marks + task rows + announced marks in one transaction).
//
// Log positions (seq) must be strictly increasing in COMMIT order, not just unique: an output reads the
// log with readLog(afterSeq) and moves its cursor past what it read, so an event that became visible
// with a position below a cursor already handed out would never be delivered. An identity column or a
// sequence default does not give that with concurrent writers (transaction A takes 10, B takes 11, B
// commits first, a reader sees 11 and moves past 10 before A commits). Here every appending transaction
// first takes a transaction-scoped advisory lock (LOCK.eventLog) and then advances the one-row counter
// event_log_head by the batch size; the lock is held until COMMIT, so the next appender (any node) can
// only allocate after this transaction is committed and visible: positions become visible in order,
// and a reader that saw position p never later sees a new event below p. Positions of a rolled-back
// append are never visible (the counter update rolls back with it), so they are reused: no gaps from
// failures. The cost is that appends are serialised across the cluster; that is what a group commit
// amortises (one lock, one counter update, a few multi-row INSERTs for thousands of events), and the
// critical section holds no round trip per event.
//
// The advisory lock is always the FIRST lock a group commit takes (before any row lock), even one with
// only marks or task rows, and every other transaction that takes it (closeUsagePeriod,
// forgetDeletedSensors) also takes it first: group commits never run at once, so their multi-row upserts
// of marks and tasks cannot deadlock with each other, and the lock itself cannot take part in a deadlock.
import type { PoolClient } from 'pg';
import type { MarkedBatch, SequenceMark, StoredEvent, TaskWrites } from '../store.js';
import { chunks, rounds } from './batches.js';
import { LOCK, lockXact, run } from './connection.js';
import { markAnnounced } from './artifact-tables.js';
import { insertTasks, moveTasks } from './task-tables.js';

/** Rows per INSERT: bounds the size of one protocol message (a group commit can hold 20,000 events). */
const INSERT_CHUNK = 5000;

/** Positions are $1 + the row's ordinality: consecutive, in the batch's order. */
const INSERT_EVENTS =
  'INSERT INTO events (seq, oid, sid, event_type, event_time, event_id, stream, json)' +
  ' SELECT $1::bigint + u.ord, u.oid, u.sid, u.event_type, u.event_time, u.event_id, u.stream, u.json' +
  ' FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[])' +
  ' WITH ORDINALITY AS u(oid, sid, event_type, event_time, event_id, stream, json, ord)';

/**
 * Same stream: only a higher seq moves the mark. Another stream_id (a sensor that lost its buffer and
 * started over) replaces it whatever its seq.
 */
const UPSERT_MARKS =
  'INSERT INTO sequence_marks (sid, stream_id, seq) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])' +
  ' ON CONFLICT (sid) DO UPDATE SET stream_id = excluded.stream_id, seq = excluded.seq' +
  ' WHERE sequence_marks.stream_id <> excluded.stream_id OR excluded.seq > sequence_marks.seq';

/** Telemetry (the "event" stream) is stored with stream NULL: only platform streams are indexed by stream. */
export function streamOf(e: StoredEvent): string | null {
  return e.stream === undefined || e.stream === null || e.stream === 'event' ? null : e.stream;
}

/** Takes the event-log lock: the first statement of every transaction that appends (see the header). */
export async function lockEventLog(client: PoolClient): Promise<void> {
  await lockXact(client, LOCK.eventLog);
}

/** Appends events at the end of the log. The transaction must hold the event-log lock (lockEventLog). */
export async function insertEvents(client: PoolClient, events: ReadonlyArray<StoredEvent>): Promise<void> {
  if (events.length === 0) return;
  const { rows } = await run<{ seq: number }>(client, 'UPDATE event_log_head SET seq = seq + $1 WHERE id = 1 RETURNING seq', [events.length]);
  const head = rows[0];
  if (!head) throw new Error('event_log_head is missing its row: the schema is damaged');
  let before = head.seq - events.length;
  for (const chunk of chunks(events, INSERT_CHUNK)) {
    await run(client, INSERT_EVENTS, [
      before,
      chunk.map((e) => e.oid), chunk.map((e) => e.sid), chunk.map((e) => e.event_type), chunk.map((e) => e.event_time),
      chunk.map((e) => e.event_id), chunk.map(streamOf), chunk.map((e) => e.json),
    ]);
    before += chunk.length;
  }
}

/** Applies sequence marks in order (a round per repeated sensor, see batches.ts). */
async function upsertMarks(client: PoolClient, marks: ReadonlyArray<SequenceMark>): Promise<void> {
  for (const round of rounds(marks, (m) => m.sid)) {
    await run(client, UPSERT_MARKS, [round.map((m) => m.sid), round.map((m) => m.stream_id), round.map((m) => m.seq)]);
  }
}

/** The body of appendEvents' transaction: the log lock, the events, then marks and task rows. */
export async function groupCommit(
  client: PoolClient, events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks: TaskWrites | undefined, batches?: ReadonlyArray<MarkedBatch>,
): Promise<void> {
  await lockEventLog(client);
  // Under the log lock every earlier commit is visible: a batch another node stored meanwhile is left out.
  await insertEvents(client, batches && batches.length > 0 ? await withoutStoredBatches(client, events, batches) : events);
  await upsertMarks(client, marks);
  if (!tasks) return;
  await insertTasks(client, tasks.create ?? []);
  await moveTasks(client, tasks.update ?? []);
  if (tasks.announce) await markAnnounced(client, tasks.announce);
}

/** `events` less the batches whose sequence mark is already stored (same stream, seq at or below it). */
async function withoutStoredBatches(client: PoolClient, events: ReadonlyArray<StoredEvent>, batches: ReadonlyArray<MarkedBatch>): Promise<ReadonlyArray<StoredEvent>> {
  const sids = [...new Set(batches.map((b) => b.mark.sid))];
  const { rows } = await run<SequenceMark>(client, 'SELECT sid, stream_id, seq FROM sequence_marks WHERE sid = ANY($1::text[])', [sids]);
  if (rows.length === 0) return events;
  const stored = new Map(rows.map((r) => [r.sid, r]));
  const drop = batches.filter((b) => {
    const m = stored.get(b.mark.sid);
    return m !== undefined && m.stream_id === b.mark.stream_id && b.mark.seq <= Number(m.seq);
  });
  if (drop.length === 0) return events;
  const skipped = new Set<number>();
  for (const b of drop) for (let i = b.start; i < b.start + b.count; i++) skipped.add(i);
  return events.filter((_, i) => !skipped.has(i));
}
