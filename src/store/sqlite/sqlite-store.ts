// The embedded store: one SQLite file through better-sqlite3. better-sqlite3 is synchronous, so every
// method runs to completion on the calling thread and the async interface only wraps the result (errors
// become rejections). Statements are prepared once and cached by their SQL text; writes that touch
// more than one row run in one IMMEDIATE transaction.
import type Database from 'better-sqlite3';
import type { ApiKeyRecord, InstallationKeyRecord, Org, ReenrollOrder, SensorHost, SensorIssue, SensorRecord, SensorTag, TaskRecord, TaskState } from '../../domain/records.js';
import { StoreNotFoundError } from '../errors.js';
import type { OutputConfig } from '../../domain/outputs.js';
import type { LogQuery, LogRow, NewSensor, OrgError, SensorListQuery, SensorPage, SequenceMark, Store, StoredEvent, StreamQuery, TaskWrites, TimelinePage, TimelineQuery } from '../store.js';
import { WAL_AUTOCHECKPOINT_PAGES, WAL_FALLBACK_CHECKPOINT_PAGES, guarded, openDatabase, type SqliteSynchronous } from './connection.js';
import { decodeSensorCursor, decodeTimelineCursor, encodeSensorCursor, encodeTimelineCursor } from '../cursor.js';
import { migrate as applyMigrations } from './migrations.js';
import { AppendThread, storeWorkerFile, type SqlWrite } from './append-thread.js';
import { CheckpointThread } from './checkpoint-thread.js';
import type { Logger } from '../../observability/logger.js';
import { prepareAppend, type AppendTransaction } from './event-append.js';
import { SET_OUTPUT_CURSOR, OutputTables } from './output-tables.js';
import { CloudAdapterTables } from './cloud-adapter-tables.js';
import { USAGE_ADD, USAGE_SET, UsageTables } from './usage-tables.js';
import { ArtifactTables } from './artifact-tables.js';
import type { ArtifactExportRecord, ArtifactListQuery, ArtifactPage, ArtifactPartRecord, ArtifactRecord, IngestionKeyRecord } from '../../domain/artifacts.js';
import type { UsageAmount, UsageDelta } from '../../domain/usage.js';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import {
  bool, toApiKey, toInstallationKey, toOrg, toSensor, toSensorTag, toSequenceMark,
  type ApiKeyRow, type InstallationKeyRow, type OrgRow, type SensorRow, type SensorTagRow,
} from './rows.js';
import { streamParams, streamSql, timelineParams, timelineSql } from './timeline.js';
import { RecentLog } from './recent-log.js';

export interface SqliteStoreOptions {
  /** Database file; created with its WAL and shared-memory files beside it. */
  path: string;
  synchronous: SqliteSynchronous;
  /**
   * Run the event log's group commits on a thread of their own (append-thread.ts), so the event loop keeps
   * serving while SQLite inserts and fsyncs. Default true; commits run in-thread for ':memory:'.
   */
  appendThread?: boolean;
  /** Where the store's threads report what goes wrong off the request path (a failed checkpoint). */
  logger?: Logger;
}

/** Tags given at enrollment (from the installation key) are recorded as added by this. */
const ENROLLMENT_TAGGER = 'installation-key';

/**
 * A sensor row with its current tags as a sorted JSON array. The correlated subquery is a range read of
 * the sensor_tags primary key (sid, tag) per sensor inside the same statement: a page of sensors is one
 * query, not one per sensor. The first parameter is `now` (tags expiring at or before it are gone).
 */
const SENSOR_SELECT =
  'SELECT s.*, (SELECT json_group_array(t.tag ORDER BY t.tag) FROM sensor_tags t' +
  ' WHERE t.sid = s.sid AND (t.expires IS NULL OR t.expires > ?)) AS tags_json FROM sensors s';

type Statement = Database.Statement<unknown[], unknown>;

function pageSize(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  return limit;
}

/** LIKE pattern matching values that start with `prefix` literally (with ESCAPE '\'). */
function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

/** Log positions counted per slice by countLog (a few milliseconds of the event loop each). */
export const COUNT_SLICE_POSITIONS = 50_000;

export class SqliteStore implements Store {
  readonly description: string;
  private readonly statements = new Map<string, Statement>();
  private readonly outputs: OutputTables;
  private appendTx: AppendTransaction | null = null;
  /** The append thread: undefined until the first append, null when commits run on this connection. */
  private appender: AppendThread | null | undefined;
  /** Checkpoints the WAL while the append thread runs. */
  private checkpointer: CheckpointThread | null = null;
  /** The groups committed last, with their log positions: what outputs that keep up read (recent-log.ts). */
  private readonly recent = new RecentLog();
  private logReadObserver: ((source: 'memory' | 'store', rows: number) => void) | null = null;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly options: Required<Pick<SqliteStoreOptions, 'appendThread' | 'synchronous'>> & Pick<SqliteStoreOptions, 'logger'>,
  ) {
    this.description = `sqlite:${path}`;
    this.outputs = new OutputTables(db);
  }

  static open(opts: SqliteStoreOptions): SqliteStore {
    return new SqliteStore(openDatabase(opts.path, opts.synchronous), opts.path, { appendThread: opts.appendThread ?? true, synchronous: opts.synchronous, logger: opts.logger });
  }

  /** A prepared statement, prepared on first use (after migrate(), when the tables exist). */
  private st(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  /** Runs `fn` in one IMMEDIATE transaction (takes the write lock up front: no upgrade deadlock). */
  private tx<T>(fn: () => T): T {
    return guarded(() => this.db.transaction(fn).immediate());
  }

  async migrate(): Promise<void> {
    applyMigrations(this.db);
  }

  async ping(): Promise<void> {
    this.st('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    const appender = this.appender;
    this.appender = null;
    await this.stopCheckpointThread();
    await appender?.close();
    this.recent.clear();
    if (!this.db.open) return;
    this.statements.clear();
    this.appendTx = null;
    this.db.close();
  }

  // Organizations

  async createOrg(org: Org): Promise<void> {
    guarded(() => this.st('INSERT INTO orgs (oid, name, quota, created) VALUES (?, ?, ?, ?)').run(org.oid, org.name, org.quota, org.created));
  }

  async bootstrapFirstOrg(org: Org, apiKey: ApiKeyRecord, installationKey: InstallationKeyRecord): Promise<boolean> {
    return this.tx(() => {
      if (this.st('SELECT 1 FROM orgs LIMIT 1').get() !== undefined) return false;
      this.st('INSERT INTO orgs (oid, name, quota, created) VALUES (?, ?, ?, ?)').run(org.oid, org.name, org.quota, org.created);
      this.st('INSERT INTO api_keys (key_id, oid, name, role, secret_hash, created) VALUES (?, ?, ?, ?, ?, ?)')
        .run(apiKey.key_id, apiKey.oid, apiKey.name, apiKey.role, apiKey.secret_hash, apiKey.created);
      this.st('INSERT INTO installation_keys (iid, oid, description, tags, secret_hash, created) VALUES (?, ?, ?, ?, ?, ?)')
        .run(installationKey.iid, installationKey.oid, installationKey.desc, JSON.stringify(installationKey.tags), installationKey.secret_hash, installationKey.created);
      return true;
    });
  }

  async getOrg(oid: string): Promise<Org | null> {
    const row = this.st('SELECT * FROM orgs WHERE oid = ?').get(oid) as OrgRow | undefined;
    return row ? toOrg(row) : null;
  }

  async listOrgs(): Promise<Org[]> {
    return (this.st('SELECT * FROM orgs ORDER BY created, oid').all() as OrgRow[]).map(toOrg);
  }

  async setOrgQuota(oid: string, quota: number | null): Promise<number | null> {
    const read = this.st('SELECT quota FROM orgs WHERE oid = ?');
    const write = this.st('UPDATE orgs SET quota = ? WHERE oid = ?');
    return this.tx(() => {
      const row = read.get(oid) as { quota: number | null } | undefined;
      if (!row) throw new StoreNotFoundError(`no organization ${oid}`);
      write.run(quota, oid);
      return row.quota;
    });
  }

  // API keys

  async createApiKey(key: ApiKeyRecord): Promise<void> {
    guarded(() =>
      this.st('INSERT INTO api_keys (key_id, oid, name, role, secret_hash, created) VALUES (?, ?, ?, ?, ?, ?)')
        .run(key.key_id, key.oid, key.name, key.role, key.secret_hash, key.created),
    );
  }

  async getApiKey(keyId: string): Promise<ApiKeyRecord | null> {
    const row = this.st('SELECT * FROM api_keys WHERE key_id = ?').get(keyId) as ApiKeyRow | undefined;
    return row ? toApiKey(row) : null;
  }

  async listApiKeys(oid: string): Promise<ApiKeyRecord[]> {
    return (this.st('SELECT * FROM api_keys WHERE oid = ? ORDER BY created, key_id').all(oid) as ApiKeyRow[]).map(toApiKey);
  }

  async deleteApiKey(oid: string, keyId: string): Promise<boolean> {
    return this.st('DELETE FROM api_keys WHERE oid = ? AND key_id = ?').run(oid, keyId).changes > 0;
  }

  // Installation keys

  async createInstallationKey(key: InstallationKeyRecord): Promise<void> {
    guarded(() =>
      this.st('INSERT INTO installation_keys (iid, oid, description, tags, secret_hash, created) VALUES (?, ?, ?, ?, ?, ?)')
        .run(key.iid, key.oid, key.desc, JSON.stringify(key.tags), key.secret_hash, key.created),
    );
  }

  async getInstallationKey(iid: string): Promise<InstallationKeyRecord | null> {
    const row = this.st('SELECT * FROM installation_keys WHERE iid = ?').get(iid) as InstallationKeyRow | undefined;
    return row ? toInstallationKey(row) : null;
  }

  async listInstallationKeys(oid: string): Promise<InstallationKeyRecord[]> {
    const rows = this.st('SELECT * FROM installation_keys WHERE oid = ? ORDER BY created, iid').all(oid) as InstallationKeyRow[];
    return rows.map(toInstallationKey);
  }

  async deleteInstallationKey(oid: string, iid: string): Promise<boolean> {
    return this.st('DELETE FROM installation_keys WHERE oid = ? AND iid = ?').run(oid, iid).changes > 0;
  }

  // Sensors

  async createSensor(s: NewSensor): Promise<void> {
    const insertSensor = this.st(
      'INSERT INTO sensors (sid, oid, iid, did, secret_hash, plat, arch, hostname, ext_ip, int_ip, mac, fingerprint,' +
        ' sensor_version, kernel, enroll) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insertTag = this.st(
      'INSERT INTO sensor_tags (sid, tag, added_by, added, expires) VALUES (?, ?, ?, ?, NULL) ON CONFLICT (sid, tag) DO NOTHING',
    );
    this.tx(() => {
      insertSensor.run(
        s.sid, s.oid, s.iid, s.secret_hash, s.plat, s.arch, s.hostname, s.ext_ip, s.int_ip, s.mac, s.fingerprint,
        s.sensor_version, bool(s.kernel), s.enroll,
      );
      for (const tag of s.tags) insertTag.run(s.sid, tag, ENROLLMENT_TAGGER, s.enroll);
    });
  }

  async getSensor(sid: string): Promise<SensorRecord | null> {
    const row = this.st(`${SENSOR_SELECT} WHERE s.sid = ?`).get(Date.now(), sid) as SensorRow | undefined;
    return row ? toSensor(row) : null;
  }

  async listSensors(oid: string, query: SensorListQuery): Promise<SensorPage> {
    const limit = pageSize(query.limit);
    const after = query.cursor !== undefined ? decodeSensorCursor(query.cursor).sid : '';
    const prefix = query.hostnamePrefix !== undefined && query.hostnamePrefix !== '' ? query.hostnamePrefix : null;
    // Hostname prefixes match ASCII case-insensitively (LIKE), with %, _ and \ in the prefix literal.
    const sql =
      `${SENSOR_SELECT} WHERE s.oid = ? AND s.sid > ?` +
      (query.includeDeleted ? '' : ' AND s.deleted IS NULL') +
      (prefix !== null ? " AND s.hostname LIKE ? ESCAPE '\\'" : '') +
      ' ORDER BY s.sid LIMIT ?';
    const params: unknown[] = [Date.now(), oid, after];
    if (prefix !== null) params.push(likePrefix(prefix));
    params.push(limit + 1);
    const rows = this.st(sql).all(...params) as SensorRow[];
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const last = rows.at(-1);
    return { sensors: rows.map(toSensor), nextCursor: more && last ? encodeSensorCursor({ sid: last.sid }) : null };
  }

  async updateSensorHost(sid: string, host: SensorHost & { isolated: boolean }, alive: number): Promise<void> {
    const { changes } = this.st(
      'UPDATE sensors SET hostname = ?, plat = ?, arch = ?, int_ip = ?, ext_ip = ?, mac = ?, fingerprint = ?,' +
        ' sensor_version = ?, kernel = ?, isolated = ?, alive = ? WHERE sid = ?',
    ).run(
      host.hostname, host.plat, host.arch, host.int_ip, host.ext_ip, host.mac, host.fingerprint, host.sensor_version,
      bool(host.kernel), bool(host.isolated), alive, sid,
    );
    if (changes === 0) throw new StoreNotFoundError(`no sensor ${sid}`);
  }

  async touchAlive(updates: ReadonlyArray<{ sid: string; alive: number }>): Promise<void> {
    if (updates.length === 0) return;
    // Never moves alive backwards (a flush racing a reconnect); unknown sensors are skipped.
    const sql = 'UPDATE sensors SET alive = ? WHERE sid = ? AND (alive IS NULL OR alive < ?)';
    await this.smallWrite(updates.map((u) => [sql, [u.alive, u.sid, u.alive]] as const), () => {
      const update = this.st(sql);
      this.tx(() => {
        for (const u of updates) update.run(u.alive, u.sid, u.alive);
      });
    });
  }

  async setSensorDeleted(sid: string, at: number | null): Promise<boolean> {
    return this.st('UPDATE sensors SET deleted = ? WHERE sid = ?').run(at, sid).changes > 0;
  }

  async setShouldIsolate(sid: string, value: boolean): Promise<void> {
    const { changes } = this.st('UPDATE sensors SET should_isolate = ? WHERE sid = ?').run(bool(value), sid);
    if (changes === 0) throw new StoreNotFoundError(`no sensor ${sid}`);
  }

  async recordSensorIssue(sid: string, issue: SensorIssue | null): Promise<void> {
    this.st('UPDATE sensors SET issue_kind = ?, issue_reason = ?, issue_at = ? WHERE sid = ?')
      .run(issue?.kind ?? null, issue?.reason ?? null, issue?.at ?? null, sid);
  }

  async setReenrollOrder(sid: string, order: ReenrollOrder | null): Promise<boolean> {
    return this.st('UPDATE sensors SET reenroll_hostname = ?, reenroll_at = ? WHERE sid = ?')
      .run(order ? (order.hostname ?? '') : null, order?.at ?? null, sid).changes > 0;
  }

  async claimSensorNotice(sid: string, kind: string, now: number, windowMs: number): Promise<boolean> {
    // The upsert only overwrites a notice older than the window; `changes` says whether this call won.
    const window = Math.min(windowMs, Number.MAX_SAFE_INTEGER);
    return this.st(
      'INSERT INTO sensor_notices (sid, kind, at) VALUES (?, ?, ?)' +
        ' ON CONFLICT (sid, kind) DO UPDATE SET at = excluded.at WHERE excluded.at - sensor_notices.at >= ?',
    ).run(sid, kind, now, window).changes > 0;
  }

  async clearSensorNotice(sid: string, kind: string): Promise<void> {
    this.st('DELETE FROM sensor_notices WHERE sid = ? AND kind = ?').run(sid, kind);
  }

  async forgetDeletedSensors(deletedBefore: number, limit: number): Promise<string[]> {
    const due = this.st('SELECT sid FROM sensors INDEXED BY sensors_deleted WHERE deleted IS NOT NULL AND deleted <= ? ORDER BY deleted LIMIT ?').pluck();
    const deletes = ['sensor_tags', 'sequence_marks', 'sensor_notices', 'tasks', 'sensors'].map((t) => this.st(`DELETE FROM ${t} WHERE sid = ?`));
    return this.tx(() => {
      const sids = due.all(deletedBefore, pageSize(limit)) as string[];
      for (const sid of sids) for (const d of deletes) d.run(sid);
      return sids;
    });
  }

  // Tags

  async getSensorTags(sid: string, now: number): Promise<SensorTag[]> {
    const rows = this.st(
      'SELECT tag, added_by, added, expires FROM sensor_tags WHERE sid = ? AND (expires IS NULL OR expires > ?) ORDER BY tag',
    ).all(sid, now) as SensorTagRow[];
    return rows.map(toSensorTag);
  }

  async addSensorTags(sid: string, tags: ReadonlyArray<SensorTag>): Promise<void> {
    if (tags.length === 0) return;
    const upsert = this.st(
      'INSERT INTO sensor_tags (sid, tag, added_by, added, expires) VALUES (?, ?, ?, ?, ?)' +
        ' ON CONFLICT (sid, tag) DO UPDATE SET added_by = excluded.added_by, added = excluded.added, expires = excluded.expires',
    );
    this.tx(() => {
      for (const t of tags) upsert.run(sid, t.tag, t.by, t.added, t.expires);
    });
  }

  async removeSensorTags(sid: string, tags: ReadonlyArray<string>): Promise<void> {
    if (tags.length === 0) return;
    const remove = this.st('DELETE FROM sensor_tags WHERE sid = ? AND tag = ?');
    this.tx(() => {
      for (const tag of tags) remove.run(sid, tag);
    });
  }

  // Tasks

  async createTask(t: TaskRecord): Promise<void> {
    guarded(() =>
      this.st(
        'INSERT INTO tasks (task_id, oid, sid, command, investigation_id, created, expires, state, sent_at, received_at, answered_at, error, answer)' +
          ' VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(t.task_id, t.oid, t.sid, t.command, t.investigation_id, t.created, t.expires, t.state, t.sent_at, t.received_at, t.answered_at, t.error, t.answer),
    );
  }

  async getTask(taskId: string): Promise<TaskRecord | null> {
    return (this.st('SELECT * FROM tasks WHERE task_id = ?').get(taskId) as TaskRecord | undefined) ?? null;
  }

  async listTasks(sid: string, limit: number): Promise<TaskRecord[]> {
    return this.st('SELECT * FROM tasks WHERE sid = ? ORDER BY created DESC, task_id DESC LIMIT ?').all(sid, pageSize(limit)) as TaskRecord[];
  }

  async takeQueuedTasks(sid: string, now: number): Promise<TaskRecord[]> {
    const expire = this.st("UPDATE tasks SET state = 'expired' WHERE sid = ? AND state = 'queued' AND expires IS NOT NULL AND expires <= ?");
    const read = this.st("SELECT * FROM tasks INDEXED BY tasks_queued WHERE sid = ? AND state = 'queued' ORDER BY created, task_id");
    return this.tx(() => {
      expire.run(sid, now);
      return read.all(sid) as TaskRecord[];
    });
  }

  async updateTask(taskId: string, from: ReadonlyArray<TaskState>, to: { state: TaskState; at: number; error?: number | null; answer?: string | null }): Promise<boolean> {
    if (from.length === 0) return false;
    const column = { queued: null, sent: 'sent_at', received: 'received_at', answered: 'answered_at', expired: null }[to.state];
    const sets = ['state = ?'];
    const params: unknown[] = [to.state];
    if (column) {
      sets.push(`${column} = ?`);
      params.push(to.at);
    }
    if (to.error !== undefined) {
      sets.push('error = ?');
      params.push(to.error);
    }
    if (to.answer !== undefined) {
      sets.push('answer = ?');
      params.push(to.answer);
    }
    const sql = `UPDATE tasks SET ${sets.join(', ')} WHERE task_id = ? AND state IN (${from.map(() => '?').join(', ')})`;
    return this.st(sql).run(...params, taskId, ...from).changes > 0;
  }

  // Events

  /**
   * Two groups at once on the append thread: it commits in the order handed over and fails every group
   * behind a failed one (append-worker.ts), so the next group can be handed over while one commits.
   */
  get appendPipelineDepth(): number {
    return this.appender && !this.appender.failed ? 2 : 1;
  }

  /** The hot path: the group commit (event-append.ts), on the append thread unless the store has none. */
  async appendEvents(events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks?: TaskWrites): Promise<void> {
    if (events.length === 0 && marks.length === 0 && !tasks?.create?.length && !tasks?.update?.length && !tasks?.announce) return;
    if (this.appender === undefined) this.appender = this.startAppendThread();
    // A thread that died rejected the group it held (rolled back, never acknowledged): commit here from now on.
    if (this.appender?.failed) this.appenderDied();
    if (this.appender) {
      // The tail keeps a copy of the group as the thread read it (recent-log.ts), taken before its buffers go to the next group.
      await this.appender.append(events, marks, tasks, (first, group) => this.recent.add(first, group));
      return;
    }
    const append = (this.appendTx ??= prepareAppend(this.db));
    const first = guarded(() => append(events, marks, tasks));
    if (first !== null) this.recent.add(first, events);
  }

  /**
   * A small write of the main thread: on the append thread when it runs (queued behind the groups handed
   * over, never blocking the event loop on SQLite's lock), here otherwise.
   */
  private async smallWrite(statements: ReadonlyArray<SqlWrite>, here: () => void): Promise<void> {
    if (this.appender?.failed) this.appenderDied();
    if (this.appender) return this.appender.write(statements);
    here();
  }

  /**
   * Started on the first append (after migrate(), so the thread's statements find their tables), with the
   * checkpoint thread beside it. While they run, this connection never checkpoints (it would stop the event
   * loop) and the append thread only past a fallback threshold: checkpoints are the checkpoint thread's.
   */
  private startAppendThread(): AppendThread | null {
    if (!this.options.appendThread || this.path === ':memory:') return null;
    const file = storeWorkerFile('append-worker');
    if (!file) return null;
    const checkpointFile = storeWorkerFile('checkpoint-worker');
    const thread = new AppendThread(file, this.path, this.options.synchronous, checkpointFile ? WAL_FALLBACK_CHECKPOINT_PAGES : WAL_AUTOCHECKPOINT_PAGES);
    if (checkpointFile) {
      this.checkpointer = new CheckpointThread(checkpointFile, this.path, this.options.synchronous, (message) => {
        this.options.logger?.warn({ err: message }, 'WAL checkpoint failed or its thread stopped (retried; nothing is lost)');
      });
    }
    this.db.pragma('wal_autocheckpoint = 0');
    return thread;
  }

  private appenderDied(): void {
    this.appender = null;
    void this.stopCheckpointThread();
    this.db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  }

  private async stopCheckpointThread(): Promise<void> {
    const checkpointer = this.checkpointer;
    this.checkpointer = null;
    await checkpointer?.close();
  }

  // ---- outputs (output-tables.ts) ----

  async listOutputs(oid?: string): Promise<OutputConfig[]> {
    return this.outputs.listOutputs(oid);
  }

  async getOutput(oid: string, name: string): Promise<OutputConfig | null> {
    return this.outputs.getOutput(oid, name);
  }

  async putOutput(config: OutputConfig): Promise<{ created: boolean }> {
    return this.outputs.putOutput(config);
  }

  async deleteOutput(oid: string, name: string): Promise<boolean> {
    return this.outputs.deleteOutput(oid, name);
  }

  async getOutputCursor(oid: string, name: string): Promise<number | null> {
    return this.outputs.getOutputCursor(oid, name);
  }

  async setOutputCursor(oid: string, name: string, seq: number): Promise<void> {
    await this.smallWrite([[SET_OUTPUT_CURSOR, [seq, oid, name, seq]]], () => this.outputs.setOutputCursor(oid, name, seq));
  }

  async readLog(query: LogQuery): Promise<LogRow[]> {
    const recent = this.recent.read(query);
    if (recent === null) {
      const rows = this.outputs.readLog(query);
      this.logReadObserver?.('store', rows.length);
      return rows;
    }
    this.logReadObserver?.('memory', recent.length);
    if (recent.length >= query.limit) return recent;
    // What was committed after the last group this store heard back about (or inserted beside it) is read
    // from the file: the answer is the same as the file's alone.
    const rest = this.outputs.readLog({ ...query, afterSeq: Math.max(query.afterSeq, this.recent.high), limit: query.limit - recent.length });
    this.logReadObserver?.('store', rest.length);
    return rest.length === 0 ? recent : recent.concat(rest);
  }

  observeLogReads(observer: (source: 'memory' | 'store', rows: number) => void): void {
    this.logReadObserver = observer;
  }

  /**
   * Counted in slices of positions with a turn of the event loop between them: counting reads every row
   * (a backlog of millions of events took seconds), and the sessions and the API must go on meanwhile.
   * Positions up to the log's end are all committed, so the slices add up to one consistent count.
   */
  async countLog(query: Omit<LogQuery, 'limit'> & { upToSeq: number }): Promise<number> {
    const upTo = Math.min(query.upToSeq, this.outputs.lastLogSeq());
    let n = 0;
    for (let after = query.afterSeq; after < upTo; after += COUNT_SLICE_POSITIONS) {
      if (after > query.afterSeq) await new Promise((resolve) => setImmediate(resolve));
      n += this.outputs.countLog({ ...query, afterSeq: after, upToSeq: Math.min(after + COUNT_SLICE_POSITIONS, upTo) });
    }
    return n;
  }

  async lastLogSeq(): Promise<number> {
    return this.outputs.lastLogSeq();
  }

  async recordOrgError(error: OrgError): Promise<void> {
    this.outputs.recordOrgError(error);
  }

  async clearOrgError(oid: string, component: string): Promise<void> {
    this.outputs.clearOrgError(oid, component);
  }

  async listOrgErrors(oid: string): Promise<OrgError[]> {
    return this.outputs.listOrgErrors(oid);
  }

  // Cloud adapters: cloud-adapter-tables.ts
  private cloudAdapterTables: CloudAdapterTables | undefined;
  private get cloudAdapters(): CloudAdapterTables { return (this.cloudAdapterTables ??= new CloudAdapterTables(this.db)); }
  async listCloudAdapters(oid?: string): Promise<CloudAdapterConfig[]> { return this.cloudAdapters.list(oid); }
  async getCloudAdapter(oid: string, name: string): Promise<CloudAdapterConfig | null> { return this.cloudAdapters.get(oid, name); }
  async putCloudAdapter(config: CloudAdapterConfig): Promise<{ created: boolean }> { return this.cloudAdapters.put(config); }
  async deleteCloudAdapter(oid: string, name: string): Promise<boolean> { return this.cloudAdapters.delete(oid, name); }
  async disableCloudAdapter(oid: string, name: string, at: number, error: string): Promise<boolean> { return this.cloudAdapters.disable(oid, name, at, error); }
  async enableCloudAdapter(oid: string, name: string, at: number): Promise<boolean> { return this.cloudAdapters.enable(oid, name, at); }
  async getCloudAdapterCursor(oid: string, name: string): Promise<string | null> { return this.cloudAdapters.getCursor(oid, name); }
  async setCloudAdapterCursor(oid: string, name: string, cursor: string | null): Promise<void> { this.cloudAdapters.setCursor(oid, name, cursor); }

  // Usage metering and schedule ticks: usage-tables.ts
  private usageTables: UsageTables | undefined;
  private get usage(): UsageTables { return (this.usageTables ??= new UsageTables(this.db)); }
  async addUsage(deltas: ReadonlyArray<UsageDelta>): Promise<void> {
    if (deltas.length === 0) return;
    await this.smallWrite(deltas.map((d) => [d.mode === 'set' ? USAGE_SET : USAGE_ADD, [d.oid, d.period, d.cat, d.k, d.v]] as const), () => this.usage.addUsage(deltas));
  }
  async listUsage(oid: string, fromPeriod: number, toPeriod: number): Promise<UsageAmount[]> { return this.usage.listUsage(oid, fromPeriod, toPeriod); }
  async usageOfPeriod(period: number): Promise<UsageAmount[]> { return this.usage.usageOfPeriod(period); }
  async unclosedUsagePeriods(before: number): Promise<number[]> { return this.usage.unclosedUsagePeriods(before); }
  async closeUsagePeriod(period: number, events: ReadonlyArray<StoredEvent>, at: number): Promise<boolean> { return this.usage.closeUsagePeriod(period, events, at); }
  async getScheduleMarks(): Promise<Record<string, number>> { return this.usage.getScheduleMarks(); }
  async claimSchedulePeriod(frequency: string, period: number): Promise<boolean> { return this.usage.claimSchedulePeriod(frequency, period); }
  async listSensorsSeenSince(since: number): Promise<SensorRecord[]> { return this.usage.listSensorsSeenSince(since); }

  // Artifacts: artifact-tables.ts
  private artifactTables: ArtifactTables | undefined;
  private get artifacts(): ArtifactTables { return (this.artifactTables ??= new ArtifactTables(this.db)); }
  async createIngestionKey(key: IngestionKeyRecord): Promise<void> { this.artifacts.createIngestionKey(key); }
  async getIngestionKey(keyId: string): Promise<IngestionKeyRecord | null> { return this.artifacts.getIngestionKey(keyId); }
  async listIngestionKeys(oid: string): Promise<IngestionKeyRecord[]> { return this.artifacts.listIngestionKeys(oid); }
  async deleteIngestionKey(oid: string, name: string): Promise<boolean> { return this.artifacts.deleteIngestionKey(oid, name); }
  async putArtifactPart(part: ArtifactPartRecord): Promise<boolean> { return this.artifacts.putPart(part); }
  async listArtifactParts(oid: string, payloadId: string): Promise<ArtifactPartRecord[]> { return this.artifacts.listParts(oid, payloadId); }
  async deleteArtifactParts(oid: string, payloadId: string): Promise<void> { this.artifacts.deleteParts(oid, payloadId); }
  async takeStaleArtifactUploads(receivedBefore: number, limit: number): Promise<Array<{ oid: string; payload_id: string }>> { return this.artifacts.takeStaleUploads(receivedBefore, limit); }
  async createArtifact(artifact: ArtifactRecord): Promise<boolean> { return this.artifacts.createArtifact(artifact); }
  async getArtifact(oid: string, logId: string): Promise<ArtifactRecord | null> { return this.artifacts.getArtifact(oid, logId); }
  async getArtifactByPayloadId(oid: string, payloadId: string): Promise<ArtifactRecord | null> { return this.artifacts.getArtifactByPayloadId(oid, payloadId); }
  async listArtifacts(query: ArtifactListQuery): Promise<ArtifactPage> { return this.artifacts.listArtifacts({ ...query, limit: pageSize(query.limit) }); }
  async takeExpiredArtifacts(now: number, limit: number): Promise<ArtifactRecord[]> { return this.artifacts.takeExpiredArtifacts(now, limit); }
  async isArtifactContentReferenced(sha256: string): Promise<boolean> { return this.artifacts.isContentReferenced(sha256); }
  async artifactBytesStored(oid: string): Promise<number> { return this.artifacts.bytesStored(oid); }
  async createArtifactExport(record: ArtifactExportRecord): Promise<void> { this.artifacts.createExport(record); }
  async getArtifactExport(oid: string, exportId: string): Promise<ArtifactExportRecord | null> { return this.artifacts.getExport(oid, exportId); }
  async finishArtifactExport(exportId: string, outcome: { state: 'ready'; size: number } | { state: 'failed'; error: string }, at: number): Promise<boolean> { return this.artifacts.finishExport(exportId, outcome, at); }
  async listPendingArtifactExports(): Promise<ArtifactExportRecord[]> { return this.artifacts.listPendingExports(); }
  async listUnannouncedArtifacts(limit: number): Promise<ArtifactRecord[]> { return this.artifacts.listUnannouncedArtifacts(limit); }
  async listUnannouncedExports(limit: number): Promise<ArtifactExportRecord[]> { return this.artifacts.listUnannouncedExports(limit); }
  async takeFinishedArtifactExports(createdBefore: number, limit: number): Promise<ArtifactExportRecord[]> { return this.artifacts.takeFinishedExports(createdBefore, limit); }

  async getSequenceMark(sid: string): Promise<SequenceMark | null> {
    const row = this.st('SELECT sid, stream_id, seq FROM sequence_marks WHERE sid = ?').get(sid) as
      | { sid: string; stream_id: string; seq: number }
      | undefined;
    return row ? toSequenceMark(row) : null;
  }

  async queryTimeline(query: TimelineQuery): Promise<TimelinePage> {
    const limit = pageSize(query.limit);
    const forward = query.forward ?? true;
    const cursor = query.cursor !== undefined ? decodeTimelineCursor(query.cursor, forward) : null;
    const sql = timelineSql({ eventType: query.eventType !== undefined, forward, cursor: cursor !== null });
    return this.readPage(sql, timelineParams(query, cursor, limit + 1), limit, forward);
  }

  async queryStream(query: StreamQuery): Promise<TimelinePage> {
    const limit = pageSize(query.limit);
    const forward = query.forward ?? true;
    const cursor = query.cursor !== undefined ? decodeTimelineCursor(query.cursor, forward) : null;
    const sql = streamSql({ forward, cursor: cursor !== null });
    return this.readPage(sql, streamParams(query, cursor, limit + 1), limit, forward);
  }

  /** Runs a (seq, event_time, json) page query fetching limit + 1 rows; the extra row means "more". */
  private readPage(sql: string, params: unknown[], limit: number, forward: boolean): TimelinePage {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      // Raw mode (arrays, not objects): the cheapest way to get the rows out.
      stmt = this.db.prepare(sql).raw(true);
      this.statements.set(sql, stmt);
    }
    const rows = stmt.all(...params) as Array<[number, number, string]>;
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const events = rows.map((r) => r[2]);
    const last = rows.at(-1);
    return { events, nextCursor: more && last ? encodeTimelineCursor({ seq: last[0], time: last[1], forward }) : null };
  }
}
