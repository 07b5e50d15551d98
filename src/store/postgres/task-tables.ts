// Tasks on PostgreSQL: creation, reads, queued hand-out and forward moves, alone (the Store methods) or
// inside the group commit of appendEvents (insertTasks / moveTasks run on its transaction's client).
// Every move is one UPDATE guarded by the allowed `from` states, so it is atomic against concurrent
// callers on other nodes: of two racing moves at most one sees the state it expects.
import type pg from 'pg';
import type { TaskRecord, TaskState } from '../../domain/records.js';
import type { TaskUpdate } from '../store.js';
import { rounds } from './batches.js';
import { run, type Queryable } from './connection.js';

const TASK_COLUMNS = 'task_id, oid, sid, command, investigation_id, created, expires, state, sent_at, received_at, answered_at, error, answer';

const INSERT_TASKS =
  `INSERT INTO tasks (${TASK_COLUMNS})` +
  ' SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[],' +
  ' $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[])';

/**
 * Every kind of move in one statement: the new state's time column is set, the others kept; error and
 * answer only when given. An update naming another sensor than the task's changes nothing.
 */
const MOVE_TASKS =
  'UPDATE tasks t SET state = u.state, sent_at = COALESCE(u.sent_at, t.sent_at), received_at = COALESCE(u.received_at, t.received_at),' +
  ' answered_at = COALESCE(u.answered_at, t.answered_at),' +
  ' error = CASE WHEN u.set_error THEN u.error ELSE t.error END, answer = CASE WHEN u.set_answer THEN u.answer ELSE t.answer END' +
  ' FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[], $8::bigint[], $9::boolean[], $10::text[], $11::text[])' +
  ' AS u(task_id, sid, state, sent_at, received_at, answered_at, set_error, error, set_answer, answer, from_states)' +
  " WHERE t.task_id = u.task_id AND t.sid = u.sid AND t.state = ANY (string_to_array(u.from_states, ','))" +
  ' RETURNING t.task_id';

/** The sensors' reported isolation, from the answers that moved their tasks (one row per sensor). */
const SET_ISOLATED = 'UPDATE sensors s SET isolated = u.isolated FROM unnest($1::text[], $2::boolean[]) AS u(sid, isolated) WHERE s.sid = u.sid';

/** Inserts task rows in one statement (a duplicate task_id rejects with StoreConflictError). */
export async function insertTasks(db: Queryable, tasks: ReadonlyArray<TaskRecord>): Promise<void> {
  if (tasks.length === 0) return;
  const col = <K extends keyof TaskRecord>(k: K): Array<TaskRecord[K]> => tasks.map((t) => t[k]);
  await run(db, INSERT_TASKS, [
    col('task_id'), col('oid'), col('sid'), col('command'), col('investigation_id'), col('created'), col('expires'), col('state'),
    col('sent_at'), col('received_at'), col('answered_at'), col('error'), col('answer'),
  ]);
}

/**
 * Applies task moves in order (a round per repeated task, see batches.ts); then the sensors' isolation
 * from those that moved and report it (the last such answer of each sensor wins, as in order).
 */
export async function moveTasks(db: Queryable, updates: ReadonlyArray<TaskUpdate>): Promise<void> {
  const moved = new Set<TaskUpdate>();
  for (const round of rounds(updates, (u) => u.task_id)) {
    const at = (state: TaskState) => round.map((u) => (u.to.state === state ? u.to.at : null));
    const { rows } = await run<{ task_id: string }>(db, MOVE_TASKS, [
      round.map((u) => u.task_id), round.map((u) => u.sid), round.map((u) => u.to.state),
      at('sent'), at('received'), at('answered'),
      round.map((u) => u.to.error !== undefined), round.map((u) => u.to.error ?? null),
      round.map((u) => u.to.answer !== undefined), round.map((u) => u.to.answer ?? null),
      round.map((u) => u.from.join(',')),
    ]);
    // A task appears at most once per round: its id names the update that moved.
    const byTask = new Map(round.map((u) => [u.task_id, u]));
    for (const r of rows) moved.add(byTask.get(r.task_id)!);
  }
  const isolation = new Map<string, boolean>();
  for (const u of updates) if (u.isolated !== undefined && moved.has(u)) isolation.set(u.sid, u.isolated);
  if (isolation.size > 0) await run(db, SET_ISOLATED, [[...isolation.keys()], [...isolation.values()]]);
}

export class TaskTables {
  constructor(private readonly pool: pg.Pool) {}

  async create(t: TaskRecord): Promise<void> {
    await insertTasks(this.pool, [t]);
  }

  async get(taskId: string): Promise<TaskRecord | null> {
    const { rows } = await run<TaskRecord>(this.pool, `SELECT ${TASK_COLUMNS} FROM tasks WHERE task_id = $1`, [taskId]);
    return rows[0] ?? null;
  }

  async list(sid: string, limit: number): Promise<TaskRecord[]> {
    const { rows } = await run<TaskRecord>(this.pool, `SELECT ${TASK_COLUMNS} FROM tasks WHERE sid = $1 ORDER BY created DESC, task_id DESC LIMIT $2`, [sid, limit]);
    return rows;
  }

  /**
   * One statement: the CTE expires the queued tasks past their time, the outer SELECT reads the other
   * queued ones. Both see the same snapshot, so the SELECT leaves out by condition what the CTE expires.
   */
  async takeQueued(sid: string, now: number): Promise<TaskRecord[]> {
    const { rows } = await run<TaskRecord>(
      this.pool,
      "WITH expired AS (UPDATE tasks SET state = 'expired' WHERE sid = $1 AND state = 'queued' AND expires IS NOT NULL AND expires <= $2)" +
        ` SELECT ${TASK_COLUMNS} FROM tasks WHERE sid = $1 AND state = 'queued' AND (expires IS NULL OR expires > $2) ORDER BY created, task_id`,
      [sid, now],
    );
    return rows;
  }

  async update(taskId: string, from: ReadonlyArray<TaskState>, to: { state: TaskState; at: number; error?: number | null; answer?: string | null }): Promise<boolean> {
    if (from.length === 0) return false;
    const column = { queued: null, sent: 'sent_at', received: 'received_at', answered: 'answered_at', expired: null }[to.state];
    const values: unknown[] = [taskId, [...from], to.state];
    const sets = ['state = $3'];
    if (column) {
      values.push(to.at);
      sets.push(`${column} = $${values.length}`);
    }
    if (to.error !== undefined) {
      values.push(to.error);
      sets.push(`error = $${values.length}`);
    }
    if (to.answer !== undefined) {
      values.push(to.answer);
      sets.push(`answer = $${values.length}`);
    }
    const { rowCount } = await run(this.pool, `UPDATE tasks SET ${sets.join(', ')} WHERE task_id = $1 AND state = ANY ($2::text[])`, values);
    return (rowCount ?? 0) > 0;
  }
}
