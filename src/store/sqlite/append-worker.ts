// The append thread's body (see append-thread.ts): its own connection to the store's file, running the
// event log's group commit and the main thread's small writes, one request at a time, in the order they arrive.
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase, type SqliteSynchronous } from './connection.js';
import { prepareAppend, unflattenEvents, type AppendTransaction } from './event-append.js';
import type Database from 'better-sqlite3';
import type { AppendReply, AppendRequest, SqlWrite } from './append-thread.js';

const { path, synchronous } = workerData as { path: string; synchronous: SqliteSynchronous };
const port = parentPort!;
const db = openDatabase(path, synchronous);
let append: AppendTransaction | null = null;
const statements = new Map<string, Database.Statement>();
const runStatements = db.transaction((list: ReadonlyArray<SqlWrite>) => {
  for (const [sql, params] of list) {
    let stmt = statements.get(sql);
    if (!stmt) statements.set(sql, (stmt = db.prepare(sql)));
    stmt.run(...params);
  }
});

port.on('message', (request: AppendRequest | 'close') => {
  if (request === 'close') {
    db.close();
    port.close();
    return;
  }
  let reply: AppendReply;
  try {
    if ('statements' in request) {
      runStatements.immediate(request.statements);
    } else {
      append ??= prepareAppend(db);
      append(unflattenEvents(request.events), request.marks, request.tasks);
    }
    reply = { id: request.id };
  } catch (err) {
    const e = err as Error & { code?: unknown };
    reply = { id: request.id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } };
  }
  port.postMessage(reply);
});
