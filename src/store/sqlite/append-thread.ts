// The event log's group commits on a thread of their own. better-sqlite3 is synchronous: committing on
// the main thread stops the event loop for the inserts and the fsync, during which no socket is read and
// no output runs. The append thread holds a second connection to the same WAL file and runs the same
// transaction (event-append.ts); the main thread hands it a group and keeps decoding the next one. The
// main thread's frequent small writes (output cursors, alive times, usage counters) go the same way:
// SQLite serialises the two connections' writes (busy_timeout), and a main-thread write waiting on that
// lock would stop the event loop for a whole commit. A commit the thread reported is visible to every read
// the main connection starts afterwards.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { SequenceMark, StoredEvent, TaskWrites } from '../store.js';
import type { SqliteSynchronous } from './connection.js';
import { EVENT_FIELDS, packEvents, type GroupBuffers, type PackedEvents, type PackedGroup } from './event-append.js';

/** One SQL statement and its parameters. */
export type SqlWrite = readonly [sql: string, params: ReadonlyArray<string | number | null>];

export type AppendRequest =
  /** A group, packed into shared memory by packEvents(): `count` events, their `strings`, `fields` and the first `byteLength` of `bytes`. */
  | {
      id: number;
      count: number;
      strings: string[];
      fields: SharedArrayBuffer;
      bytes: SharedArrayBuffer;
      byteLength: number;
      marks: ReadonlyArray<SequenceMark>;
      tasks: TaskWrites | undefined;
    }
  /** The main thread has seen a group fail: groups handed over from now on may commit again. */
  | { id: number; reset: true }
  /** Small writes of the main thread (cursors, alive times, usage) run here too, so they never wait on the lock. */
  | { id: number; statements: ReadonlyArray<SqlWrite> };

export interface AppendReply {
  id: number;
  /** A committed group's first log position (its events took consecutive ones). */
  first?: number;
  error?: { message: string; code: string | undefined };
}

/** An error the append thread reported (SQLite's code kept), or its death. */
export class AppendThreadError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = 'AppendThreadError';
  }
}

/**
 * The compiled script of one of the store's threads (`append-worker`, `checkpoint-worker`). Under the test
 * runner this module is TypeScript and the thread runs the build's copy (`npm test` builds first); null
 * when there is none, and the store then commits and checkpoints in-thread.
 */
export function storeWorkerFile(name: 'append-worker' | 'checkpoint-worker'): string | null {
  const here = fileURLToPath(import.meta.url);
  const file = here.endsWith('.ts')
    ? here.replace(/[\\/]src[\\/](store[\\/]sqlite[\\/])append-thread\.ts$/, (_m, dir: string) => `/dist/${dir}${name}.js`)
    : here.replace(/append-thread\.js$/, `${name}.js`);
  return file !== here && existsSync(file) ? file : null;
}

/** First size of a group's byte buffer; it doubles while a group needs more, and keeps that size. */
const INITIAL_GROUP_BYTES = 1 << 20;
/** First size of a group's field buffer: 1,024 events. */
const INITIAL_GROUP_FIELDS = 1024 * EVENT_FIELDS;
/** Buffers kept for the next groups (two groups are in flight at most, and one being packed). */
const MAX_SPARE_GROUP_BUFFERS = 3;
/**
 * Largest byte buffer kept for the next groups: a full group of ordinary events needs 16-32 MiB. One grown
 * for a burst of very large events is let go once its group is committed, as its strings used to be, so
 * its resident pages are not held for the life of the node.
 */
export const MAX_KEPT_GROUP_BYTES = 64 * 1024 * 1024;

function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

export class AppendThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (first: number | null) => void; reject: (err: Error) => void }>();
  /** Ids of the pending requests that are groups of events (not small writes). */
  private readonly appends = new Set<number>();
  /** Groups handed over and not yet answered: close() lets them finish. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Shared buffers for a group, not in use by a group in flight (grown as groups need). */
  private readonly spareBuffers: GroupBuffers[] = [];
  /** packEvents' map of a group's distinct strings, reused from group to group. */
  private readonly intern = new Map<string, number>();
  private nextId = 1;
  private failure: Error | null = null;
  private readonly exited: Promise<void>;

  /** `autocheckpointPages`: the thread's own checkpoints, a fallback when a checkpoint thread runs beside it. */
  constructor(workerFile: string, path: string, synchronous: SqliteSynchronous, readonly autocheckpointPages: number) {
    this.worker = new Worker(workerFile, { workerData: { path, synchronous, autocheckpointPages } });
    this.worker.on('message', (reply: AppendReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      // Every group handed over after a failed one fails too (it may hold the next batch of a sensor whose
      // batch was not stored); the ones handed over from now on are the writer's answer to the failure.
      if (reply.error && this.appends.has(reply.id)) this.worker.postMessage({ id: 0, reset: true } satisfies AppendRequest);
      this.appends.delete(reply.id);
      if (reply.error) waiter.reject(new AppendThreadError(reply.error.message, reply.error.code));
      else waiter.resolve(reply.first ?? null);
    });
    this.worker.on('error', (err) => this.fail(new AppendThreadError(`the store's append thread failed: ${err.message}`, undefined)));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => {
      this.fail(new AppendThreadError("the store's append thread has stopped", undefined));
      resolve();
    }));
  }

  /** Bytes of shared memory kept for the next groups (not in use by a group in flight). */
  get spareBytes(): number {
    return this.spareBuffers.reduce((n, b) => n + b.bytes.length + b.fields.byteLength, 0);
  }

  /** The thread died (its uncommitted group was rolled back and rejected); the store commits in-thread from then on. */
  get failed(): boolean {
    return this.failure !== null;
  }

  /**
   * Resolves once the group is committed (durably, per the store's synchronous setting), with the log
   * position of its first event (null when it has no events or the thread could not tell). `committed`
   * is called first with that position and the group as the thread read it: views of shared buffers that
   * the next group reuses, valid only during the call.
   */
  append(events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks: TaskWrites | undefined, committed?: (first: number, group: PackedEvents) => void): Promise<number | null> {
    // The thread reads the group in place until it answers: the buffers are this group's until then.
    const buffers = this.spareBuffers.pop() ?? { bytes: sharedBuffer(INITIAL_GROUP_BYTES), fields: new Float64Array(sharedBuffer(INITIAL_GROUP_FIELDS * Float64Array.BYTES_PER_ELEMENT).buffer) };
    let packed: PackedGroup | undefined;
    const sent = this.send((id) => {
      this.appends.add(id);
      packed = packEvents(events, buffers, this.intern, sharedBuffer);
      return {
        id, count: packed.count, strings: packed.strings, fields: buffers.fields.buffer as SharedArrayBuffer,
        bytes: buffers.bytes.buffer as SharedArrayBuffer, byteLength: packed.bytes, marks, tasks,
      };
    }, () => this.intern.clear());
    const done = committed
      ? sent.then((first) => {
          if (first !== null && packed && packed.count > 0) {
            const group = { count: packed.count, strings: packed.strings, fields: buffers.fields.subarray(0, packed.count * EVENT_FIELDS), bytes: buffers.bytes.subarray(0, packed.bytes) };
            try {
              committed(first, group);
            } catch {
              // What follows the commit cannot undo it: the group is stored and its senders are acknowledged.
            }
          }
          return first;
        })
      : sent;
    const release = (): void => {
      const kept = buffers.bytes.length <= MAX_KEPT_GROUP_BYTES && buffers.fields.byteLength <= MAX_KEPT_GROUP_BYTES;
      if (kept && this.spareBuffers.length < MAX_SPARE_GROUP_BUFFERS) this.spareBuffers.push(buffers);
    };
    done.then(release, release);
    return done;
  }

  /**
   * Runs the statements in one transaction after the groups handed over before them. The main connection
   * writing itself would block the event loop on SQLite's lock while a group commits (busy_timeout).
   */
  async write(statements: ReadonlyArray<SqlWrite>): Promise<void> {
    await this.send((id) => ({ id, statements }));
  }

  /** `afterPost`: runs once the request has been cloned for the thread. */
  private send(request: (id: number) => AppendRequest, afterPost?: () => void): Promise<number | null> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const done = new Promise<number | null>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.worker.postMessage(request(id));
      } finally {
        afterPost?.();
      }
    });
    this.inFlight.add(done);
    const forget = (): void => void this.inFlight.delete(done);
    done.then(forget, forget);
    return done;
  }

  /** Lets the commits already handed over finish, then closes the thread's connection. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    if (!this.failure) this.worker.postMessage('close');
    await this.exited;
  }

  /** Ends the thread at once, as a crash would (for tests of the store's recovery). */
  async kill(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.pending.values()) w.reject(this.failure);
    this.pending.clear();
    this.appends.clear();
  }
}
