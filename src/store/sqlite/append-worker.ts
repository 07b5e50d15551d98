// The append thread's body (see append-thread.ts): its own connection to the store's file, running the
// event log's group commits and the main thread's small writes in the order they arrive. Whatever arrived
// while a commit ran is committed together: one transaction (one fsync of the WAL) for all of it, each
// request in a savepoint of its own, so a request that fails is rolled back and answered alone.
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase, type SqliteSynchronous } from './connection.js';
import { EVENT_FIELDS, prepareAppend, type AppendTransaction } from './event-append.js';
import type Database from 'better-sqlite3';
import type { AppendReply, AppendRequest, SqlWrite } from './append-thread.js';

type GroupRequest = Exclude<AppendRequest, { reset: true }>;

const { path, synchronous, autocheckpointPages } = workerData as { path: string; synchronous: SqliteSynchronous; autocheckpointPages: number };
const port = parentPort!;
const db = openDatabase(path, synchronous);
db.pragma(`wal_autocheckpoint = ${autocheckpointPages}`);
let append: AppendTransaction | null = null;
const statements = new Map<string, Database.Statement>();
const runStatements = db.transaction((list: ReadonlyArray<SqlWrite>) => {
  for (const [sql, params] of list) {
    let stmt = statements.get(sql);
    if (!stmt) statements.set(sql, (stmt = db.prepare(sql)));
    stmt.run(...params);
  }
});

/**
 * Set when a group of events fails: every group after it fails too until the main thread, having seen
 * the failure, says so (a later group may hold the next batch of a sensor whose batch was not stored).
 */
let failedGroup: NonNullable<AppendReply['error']> | null = null;

/**
 * Runs one request in a transaction of its own, or in a savepoint inside the shared one (better-sqlite3
 * nests them). Returns the log position of a group's first event (null when it has none to report).
 */
function run(request: GroupRequest): number | null {
  if ('statements' in request) {
    runStatements.immediate(request.statements);
    return null;
  }
  if (failedGroup) throw Object.assign(new Error(`an earlier group commit failed: ${failedGroup.message}`), { code: failedGroup.code });
  append ??= prepareAppend(db);
  try {
    const { count, strings, fields, bytes, byteLength } = request;
    return append({ count, strings, fields: new Float64Array(fields, 0, count * EVENT_FIELDS), bytes: Buffer.from(bytes, 0, byteLength) }, request.marks, request.tasks);
  } catch (err) {
    failedGroup = failure(err);
    throw err;
  }
}

function failure(err: unknown): NonNullable<AppendReply['error']> {
  const e = err as Error & { code?: unknown };
  return { message: e.message, code: typeof e.code === 'string' ? e.code : undefined };
}

/**
 * Commits every request that arrived since the last commit in one transaction and answers each: the
 * ones whose savepoint failed with their error, the rest once the transaction is committed (or all of
 * them with the commit's error when it is the commit that fails).
 */
const commitAll = db.transaction((requests: ReadonlyArray<GroupRequest>, errors: Map<number, AppendReply['error']>, firsts: Map<number, number>) => {
  for (const request of requests) {
    try {
      const first = run(request);
      if (first !== null) firsts.set(request.id, first);
    } catch (err) {
      errors.set(request.id, failure(err));
    }
  }
});

let queue: GroupRequest[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const requests = queue;
  queue = [];
  if (requests.length === 0) return;
  const errors = new Map<number, AppendReply['error']>();
  const firsts = new Map<number, number>();
  let commitError: AppendReply['error'] | undefined;
  try {
    if (requests.length === 1) {
      // Alone: its own transaction, no savepoint.
      try {
        const first = run(requests[0]!);
        if (first !== null) firsts.set(requests[0]!.id, first);
      } catch (err) {
        errors.set(requests[0]!.id, failure(err));
      }
    } else {
      commitAll.immediate(requests, errors, firsts);
    }
  } catch (err) {
    commitError = failure(err);
    if (requests.some((r) => !('statements' in r))) failedGroup ??= commitError;
  }
  for (const request of requests) {
    const error = commitError ?? errors.get(request.id);
    const first = firsts.get(request.id);
    port.postMessage(error ? { id: request.id, error } : first !== undefined ? { id: request.id, first } : { id: request.id });
  }
}

port.on('message', (request: AppendRequest | 'close') => {
  if (request === 'close') {
    flush();
    db.close();
    port.close();
    return;
  }
  if ('reset' in request) {
    // Everything handed over before the reset was queued before it, and fails first if it must.
    flush();
    failedGroup = null;
    return;
  }
  queue.push(request);
  // Messages that arrived during the last commit are all delivered before the next turn of the loop.
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
