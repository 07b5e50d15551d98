// The PostgreSQL store: the same contract as the embedded SQLite store (test/contract/store-contract.ts),
// for deployments where several cluster nodes share one database.
//
// - One pg.Pool per store (connection.ts); an optional schema isolates one installation (or test) in a
//   shared database. Every method is one statement on the pool, or one transaction on one client when
//   it writes more than one statement (withTransaction).
// - Safe against other nodes: every claim/disable/close/finish/take method is a single conditional
//   statement (UPDATE ... WHERE, INSERT ... ON CONFLICT, DELETE over FOR UPDATE SKIP LOCKED rows) or a
//   transaction serialised by an advisory lock; see each table module's header.
// - The event log (event-log.ts, partitions.ts, timeline.ts): appends are group commits with commit-ordered
//   log positions; reads are index range scans of monthly partitions.
// - Cursors are the backend-neutral ones of ../cursor.ts; a foreign or mangled one is an InvalidCursorError.
// Orgs, API keys and installation keys are small enough to live here; the rest is in *-tables.ts.
import type pg from 'pg';
import type { ApiKeyRecord, InstallationKeyRecord, Org, ReenrollOrder, SensorHost, SensorIssue, SensorRecord, SensorTag, TaskRecord, TaskState } from '../../domain/records.js';
import type { OutputConfig } from '../../domain/outputs.js';
import type { ArtifactExportRecord, ArtifactListQuery, ArtifactPage, ArtifactPartRecord, ArtifactRecord, IngestionKeyRecord } from '../../domain/artifacts.js';
import type { UsageAmount, UsageDelta } from '../../domain/usage.js';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import { StoreNotFoundError } from '../errors.js';
import { decodeTimelineCursor, encodeTimelineCursor } from '../cursor.js';
import type { LogQuery, LogRow, MarkedBatch, NewSensor, OrgError, SensorListQuery, SensorPage, SequenceMark, Store, StoredEvent, StreamQuery, TaskWrites, TimelinePage, TimelineQuery } from '../store.js';
import { pageSize } from './batches.js';
import { createPool, ensureSchema, LOCK, lockXact, redactUrl, run, withTransaction, type PostgresConnectionOptions } from './connection.js';
import { groupCommit } from './event-log.js';
import { migrate as applyMigrations } from './migrations.js';
import { EventPartitions } from './partitions.js';
import { toApiKey, toInstallationKey, toOrg, type InstallationKeyRow } from './rows.js';
import { ArtifactTables } from './artifact-tables.js';
import { ClusterTables } from './cluster-tables.js';
import type { ClusterStore } from '../cluster-store.js';
import { CloudAdapterTables } from './cloud-adapter-tables.js';
import { OutputTables } from './output-tables.js';
import { SensorTables } from './sensor-tables.js';
import { TaskTables } from './task-tables.js';
import { streamQuery, timelineQuery, type PageQuery } from './timeline.js';
import { UsageTables } from './usage-tables.js';

export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /**
   * How this node shares the schema (a session advisory lock taken by migrate(), held until close()):
   * - "single": alone. A node outside the cluster mode keeps per-node truths (who is online, quota,
   *   schedule ticks, output delivery) in memory, so a second node on the schema — single or clustered —
   *   is refused (exclusive lock).
   * - "cluster": with the other nodes of a cluster (shared lock): a single node cannot start beside them.
   * Omitted: no lock (tests and tools that open a store next to a running node).
   */
  nodeMode?: 'single' | 'cluster';
}

/** Another node holds the schema in a way this one cannot join (PostgresStoreOptions.nodeMode). */
export class StoreInUseError extends Error {
  override readonly name = 'StoreInUseError';
}

const API_KEY_COLUMNS = 'key_id, oid, name, role, secret_hash, created';
const INSTALLATION_KEY_COLUMNS = 'iid, oid, description, tags, secret_hash, created';

/** How far ahead of the current month migrate() creates event partitions (this month and the next). */
const MONTHS_AHEAD = 1;

export class PostgresStore implements Store {
  readonly description: string;
  private closed = false;
  /** The connection holding the single-node lock, while held. */
  private nodeLock: pg.PoolClient | null = null;
  /** Why the single-node lock's connection was lost, if it was. */
  private nodeLockLost: Error | undefined;
  private logReadObserver: ((source: 'memory' | 'store', rows: number) => void) | null = null;
  private readonly partitions: EventPartitions;
  private readonly sensors: SensorTables;
  private readonly tasks: TaskTables;
  private readonly outputs: OutputTables;
  private readonly cloudAdapters: CloudAdapterTables;
  private readonly usage: UsageTables;
  private readonly artifacts: ArtifactTables;
  /** The cluster mode's tables (nodes, sessions, relay position). */
  readonly cluster: ClusterStore;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string | undefined,
    url: string,
    private readonly nodeMode: 'single' | 'cluster' | undefined,
  ) {
    this.description = `${redactUrl(url)}${schema !== undefined ? ` (schema ${schema})` : ''}`;
    this.partitions = new EventPartitions(pool);
    this.sensors = new SensorTables(pool);
    this.tasks = new TaskTables(pool);
    this.outputs = new OutputTables(pool);
    this.cloudAdapters = new CloudAdapterTables(pool);
    this.usage = new UsageTables(pool, this.partitions);
    this.artifacts = new ArtifactTables(pool);
    this.cluster = new ClusterTables(pool);
  }

  /** Creates the pool; nothing connects until the first call (normally migrate()). */
  static open(opts: PostgresStoreOptions): PostgresStore {
    return new PostgresStore(createPool(opts), opts.schema, opts.url, opts.nodeMode);
  }

  async migrate(): Promise<void> {
    if (this.schema !== undefined) await ensureSchema(this.pool, this.schema);
    if (this.nodeMode !== undefined && !this.nodeLock) await this.claimNode(this.nodeMode);
    await applyMigrations(this.pool);
    // The months appends are about to need, so the usual append never creates a partition.
    const now = new Date();
    const months = Array.from({ length: MONTHS_AHEAD + 1 }, (_, i) => Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
    await this.partitions.ensure(months);
  }

  /** Takes the session-scoped node lock (exclusive alone, shared in a cluster) on a connection kept out of the pool until close(). */
  private async claimNode(mode: 'single' | 'cluster'): Promise<void> {
    const client = await this.pool.connect();
    try {
      const fn = mode === 'single' ? 'pg_try_advisory_lock' : 'pg_try_advisory_lock_shared';
      const { rows } = await client.query<{ ok: boolean }>(
        `SELECT ${fn}($1, hashtext(COALESCE(current_schema(), ''))) AS ok`, [LOCK.node],
      );
      if (!rows[0]?.ok) {
        throw new StoreInUseError(
          mode === 'single'
            ? `another Picket node is running on ${this.description}; several nodes on one database need the cluster mode (--bus nats://…) on every node`
            : `a single Picket node (without --bus) is running on ${this.description}; stop it before starting cluster nodes`,
        );
      }
    } catch (err) {
      client.release();
      throw err;
    }
    // A checked-out client's connection errors are emitted on the client (an unhandled one would crash the
    // process). Losing this connection loses the lock: ping() (/readyz) reports it from then on.
    client.on('error', (err) => {
      this.nodeLockLost ??= err;
    });
    this.nodeLock = client;
  }

  async ping(): Promise<void> {
    if (this.nodeLockLost) throw new Error(`lost the connection holding the node lock: ${this.nodeLockLost.message}`);
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Unlocked explicitly first (a closed socket frees the lock only once the server notices), then the
    // connection is destroyed: the session ends and anything it still held with it.
    if (this.nodeLock && !this.nodeLockLost) await this.nodeLock.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
    this.nodeLock?.release(true);
    this.nodeLock = null;
    await this.pool.end();
  }

  // Organizations

  async createOrg(org: Org): Promise<void> {
    await run(this.pool, 'INSERT INTO orgs (oid, name, quota, created) VALUES ($1, $2, $3, $4)', [org.oid, org.name, org.quota, org.created]);
  }

  /** Serialised by an advisory lock: nodes starting together on an empty database create one organization. */
  async bootstrapFirstOrg(org: Org, apiKey: ApiKeyRecord, key: InstallationKeyRecord): Promise<boolean> {
    return withTransaction(this.pool, async (client) => {
      await lockXact(client, LOCK.bootstrap);
      if ((await run(client, 'SELECT 1 FROM orgs LIMIT 1')).rows.length > 0) return false;
      await run(client, 'INSERT INTO orgs (oid, name, quota, created) VALUES ($1, $2, $3, $4)', [org.oid, org.name, org.quota, org.created]);
      await run(client, `INSERT INTO api_keys (${API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`, [apiKey.key_id, apiKey.oid, apiKey.name, apiKey.role, apiKey.secret_hash, apiKey.created]);
      await run(client, `INSERT INTO installation_keys (${INSTALLATION_KEY_COLUMNS}) VALUES ($1, $2, $3, $4::text[], $5, $6)`, [key.iid, key.oid, key.desc, key.tags, key.secret_hash, key.created]);
      return true;
    });
  }

  async getOrg(oid: string): Promise<Org | null> {
    const { rows } = await run<Org>(this.pool, 'SELECT oid, name, quota, created FROM orgs WHERE oid = $1', [oid]);
    return rows[0] ? toOrg(rows[0]) : null;
  }

  async listOrgs(): Promise<Org[]> {
    return (await run<Org>(this.pool, 'SELECT oid, name, quota, created FROM orgs ORDER BY created, oid')).rows.map(toOrg);
  }

  /**
   * One statement: the subquery locks the row and reads the quota before the update (re-read at the
   * latest version when a concurrent update committed first), so the previous quota returned is exact.
   */
  async setOrgQuota(oid: string, quota: number | null): Promise<number | null> {
    const { rows } = await run<{ previous: number | null }>(
      this.pool,
      'UPDATE orgs SET quota = $2 FROM (SELECT quota AS previous FROM orgs WHERE oid = $1 FOR UPDATE) AS prev WHERE orgs.oid = $1 RETURNING prev.previous',
      [oid, quota],
    );
    const row = rows[0];
    if (!row) throw new StoreNotFoundError(`no organization ${oid}`);
    return row.previous;
  }

  // API keys

  async createApiKey(key: ApiKeyRecord): Promise<void> {
    await run(this.pool, `INSERT INTO api_keys (${API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`, [
      key.key_id, key.oid, key.name, key.role, key.secret_hash, key.created,
    ]);
  }

  async getApiKey(keyId: string): Promise<ApiKeyRecord | null> {
    const { rows } = await run<ApiKeyRecord>(this.pool, `SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE key_id = $1`, [keyId]);
    return rows[0] ? toApiKey(rows[0]) : null;
  }

  async listApiKeys(oid: string): Promise<ApiKeyRecord[]> {
    return (await run<ApiKeyRecord>(this.pool, `SELECT ${API_KEY_COLUMNS} FROM api_keys WHERE oid = $1 ORDER BY created, key_id`, [oid])).rows.map(toApiKey);
  }

  async deleteApiKey(oid: string, keyId: string): Promise<boolean> {
    return ((await run(this.pool, 'DELETE FROM api_keys WHERE oid = $1 AND key_id = $2', [oid, keyId])).rowCount ?? 0) > 0;
  }

  // Installation keys

  async createInstallationKey(key: InstallationKeyRecord): Promise<void> {
    await run(this.pool, `INSERT INTO installation_keys (${INSTALLATION_KEY_COLUMNS}) VALUES ($1, $2, $3, $4::text[], $5, $6)`, [
      key.iid, key.oid, key.desc, key.tags, key.secret_hash, key.created,
    ]);
  }

  async getInstallationKey(iid: string): Promise<InstallationKeyRecord | null> {
    const { rows } = await run<InstallationKeyRow>(this.pool, `SELECT ${INSTALLATION_KEY_COLUMNS} FROM installation_keys WHERE iid = $1`, [iid]);
    return rows[0] ? toInstallationKey(rows[0]) : null;
  }

  async listInstallationKeys(oid: string): Promise<InstallationKeyRecord[]> {
    const { rows } = await run<InstallationKeyRow>(
      this.pool,
      `SELECT ${INSTALLATION_KEY_COLUMNS} FROM installation_keys WHERE oid = $1 ORDER BY created, iid`,
      [oid],
    );
    return rows.map(toInstallationKey);
  }

  async deleteInstallationKey(oid: string, iid: string): Promise<boolean> {
    return ((await run(this.pool, 'DELETE FROM installation_keys WHERE oid = $1 AND iid = $2', [oid, iid])).rowCount ?? 0) > 0;
  }

  // Sensors and tags: sensor-tables.ts

  async createSensor(sensor: NewSensor): Promise<void> { await this.sensors.create(sensor); }
  async getSensor(sid: string): Promise<SensorRecord | null> { return this.sensors.get(sid); }
  async listSensors(oid: string, query: SensorListQuery): Promise<SensorPage> { return this.sensors.list(oid, query); }
  async updateSensorHost(sid: string, host: SensorHost & { isolated: boolean }, alive: number): Promise<void> { await this.sensors.updateHost(sid, host, alive); }
  async touchAlive(updates: ReadonlyArray<{ sid: string; alive: number }>): Promise<void> { await this.sensors.touchAlive(updates); }
  async setSensorDeleted(sid: string, at: number | null): Promise<boolean> { return this.sensors.setDeleted(sid, at); }
  async setShouldIsolate(sid: string, value: boolean): Promise<void> { await this.sensors.setShouldIsolate(sid, value); }
  async recordSensorIssue(sid: string, issue: SensorIssue | null): Promise<void> { await this.sensors.recordIssue(sid, issue); }
  async setReenrollOrder(sid: string, order: ReenrollOrder | null): Promise<boolean> { return this.sensors.setReenrollOrder(sid, order); }
  async claimSensorNotice(sid: string, kind: string, now: number, windowMs: number): Promise<boolean> { return this.sensors.claimNotice(sid, kind, now, windowMs); }
  async clearSensorNotice(sid: string, kind: string): Promise<void> { await this.sensors.clearNotice(sid, kind); }
  async forgetDeletedSensors(deletedBefore: number, limit: number): Promise<string[]> { return this.sensors.forgetDeleted(deletedBefore, limit); }
  async getSensorTags(sid: string, now: number): Promise<SensorTag[]> { return this.sensors.getTags(sid, now); }
  async addSensorTags(sid: string, tags: ReadonlyArray<SensorTag>): Promise<void> { await this.sensors.addTags(sid, tags); }
  async removeSensorTags(sid: string, tags: ReadonlyArray<string>): Promise<void> { await this.sensors.removeTags(sid, tags); }

  // Tasks: task-tables.ts

  async createTask(task: TaskRecord): Promise<void> { await this.tasks.create(task); }
  async getTask(taskId: string): Promise<TaskRecord | null> { return this.tasks.get(taskId); }
  async listTasks(sid: string, limit: number): Promise<TaskRecord[]> { return this.tasks.list(sid, pageSize(limit)); }
  async takeQueuedTasks(sid: string, now: number): Promise<TaskRecord[]> { return this.tasks.takeQueued(sid, now); }
  async updateTask(taskId: string, from: ReadonlyArray<TaskState>, to: { state: TaskState; at: number; error?: number | null; answer?: string | null }): Promise<boolean> {
    return this.tasks.update(taskId, from, to);
  }

  // Events

  async appendEvents(events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks?: TaskWrites, batches?: ReadonlyArray<MarkedBatch>): Promise<void> {
    if (events.length === 0 && marks.length === 0 && !tasks?.create?.length && !tasks?.update?.length && !tasks?.announce) return;
    await this.partitions.appending(events.map((e) => e.event_time), () =>
      withTransaction(this.pool, (client) => groupCommit(client, events, marks, tasks, batches)),
    );
  }

  async getSequenceMark(sid: string): Promise<SequenceMark | null> {
    const { rows } = await run<SequenceMark>(this.pool, 'SELECT sid, stream_id, seq FROM sequence_marks WHERE sid = $1', [sid]);
    return rows[0] ?? null;
  }

  async queryTimeline(query: TimelineQuery): Promise<TimelinePage> {
    const limit = pageSize(query.limit);
    const forward = query.forward ?? true;
    const cursor = query.cursor !== undefined ? decodeTimelineCursor(query.cursor, forward) : null;
    return this.readPage(timelineQuery(query, cursor, limit + 1), limit, forward);
  }

  async queryStream(query: StreamQuery): Promise<TimelinePage> {
    const limit = pageSize(query.limit);
    const forward = query.forward ?? true;
    const cursor = query.cursor !== undefined ? decodeTimelineCursor(query.cursor, forward) : null;
    return this.readPage(streamQuery(query, cursor, limit + 1), limit, forward);
  }

  /** Runs a (seq, event_time, json) page query fetching limit + 1 rows; the extra row means "more". */
  private async readPage(q: PageQuery, limit: number, forward: boolean): Promise<TimelinePage> {
    const { rows } = await this.pool.query<[number, number, string]>({ text: q.text, values: q.values, rowMode: 'array' });
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const last = rows.at(-1);
    return { events: rows.map((r) => r[2]), nextCursor: more && last ? encodeTimelineCursor({ seq: last[0], time: last[1], forward }) : null };
  }

  // Outputs, the event log and organization errors: output-tables.ts

  async listOutputs(oid?: string): Promise<OutputConfig[]> { return this.outputs.listOutputs(oid); }
  async getOutput(oid: string, name: string): Promise<OutputConfig | null> { return this.outputs.getOutput(oid, name); }
  async putOutput(config: OutputConfig): Promise<{ created: boolean }> { return this.outputs.putOutput(config); }
  async deleteOutput(oid: string, name: string): Promise<boolean> { return this.outputs.deleteOutput(oid, name); }
  async getOutputCursor(oid: string, name: string): Promise<number | null> { return this.outputs.getOutputCursor(oid, name); }
  async setOutputCursor(oid: string, name: string, seq: number): Promise<void> { await this.outputs.setOutputCursor(oid, name, seq); }
  async readLog(query: LogQuery): Promise<LogRow[]> {
    const rows = await this.outputs.readLog(query);
    this.logReadObserver?.('store', rows.length);
    return rows;
  }

  observeLogReads(observer: (source: 'memory' | 'store', rows: number) => void): void {
    this.logReadObserver = observer;
  }
  async countLog(query: Omit<LogQuery, 'limit'> & { upToSeq: number }): Promise<number> { return this.outputs.countLog(query); }
  async lastLogSeq(): Promise<number> { return this.outputs.lastLogSeq(); }
  async recordOrgError(error: OrgError): Promise<void> { await this.outputs.recordOrgError(error); }
  async clearOrgError(oid: string, component: string): Promise<void> { await this.outputs.clearOrgError(oid, component); }
  async listOrgErrors(oid: string): Promise<OrgError[]> { return this.outputs.listOrgErrors(oid); }

  // Cloud adapters: cloud-adapter-tables.ts

  async listCloudAdapters(oid?: string): Promise<CloudAdapterConfig[]> { return this.cloudAdapters.list(oid); }
  async getCloudAdapter(oid: string, name: string): Promise<CloudAdapterConfig | null> { return this.cloudAdapters.get(oid, name); }
  async putCloudAdapter(config: CloudAdapterConfig): Promise<{ created: boolean }> { return this.cloudAdapters.put(config); }
  async deleteCloudAdapter(oid: string, name: string): Promise<boolean> { return this.cloudAdapters.delete(oid, name); }
  async disableCloudAdapter(oid: string, name: string, at: number, error: string): Promise<boolean> { return this.cloudAdapters.disable(oid, name, at, error); }
  async enableCloudAdapter(oid: string, name: string, at: number): Promise<boolean> { return this.cloudAdapters.enable(oid, name, at); }
  async getCloudAdapterCursor(oid: string, name: string): Promise<string | null> { return this.cloudAdapters.getCursor(oid, name); }
  async setCloudAdapterCursor(oid: string, name: string, cursor: string | null): Promise<void> { await this.cloudAdapters.setCursor(oid, name, cursor); }

  // Usage metering and schedule ticks: usage-tables.ts

  async addUsage(deltas: ReadonlyArray<UsageDelta>): Promise<void> { await this.usage.addUsage(deltas); }
  async listUsage(oid: string, fromPeriod: number, toPeriod: number): Promise<UsageAmount[]> { return this.usage.listUsage(oid, fromPeriod, toPeriod); }
  async usageOfPeriod(period: number): Promise<UsageAmount[]> { return this.usage.usageOfPeriod(period); }
  async unclosedUsagePeriods(before: number): Promise<number[]> { return this.usage.unclosedUsagePeriods(before); }
  async closeUsagePeriod(period: number, events: ReadonlyArray<StoredEvent>, at: number): Promise<boolean> { return this.usage.closeUsagePeriod(period, events, at); }
  async getScheduleMarks(): Promise<Record<string, number>> { return this.usage.getScheduleMarks(); }
  async claimSchedulePeriod(frequency: string, period: number): Promise<boolean> { return this.usage.claimSchedulePeriod(frequency, period); }
  async listSensorsSeenSince(since: number): Promise<SensorRecord[]> { return this.usage.listSensorsSeenSince(since); }

  // Artifacts: artifact-tables.ts

  async createIngestionKey(key: IngestionKeyRecord): Promise<void> { await this.artifacts.createIngestionKey(key); }
  async getIngestionKey(keyId: string): Promise<IngestionKeyRecord | null> { return this.artifacts.getIngestionKey(keyId); }
  async listIngestionKeys(oid: string): Promise<IngestionKeyRecord[]> { return this.artifacts.listIngestionKeys(oid); }
  async deleteIngestionKey(oid: string, name: string): Promise<boolean> { return this.artifacts.deleteIngestionKey(oid, name); }
  async putArtifactPart(part: ArtifactPartRecord): Promise<boolean> { return this.artifacts.putPart(part); }
  async listArtifactParts(oid: string, payloadId: string): Promise<ArtifactPartRecord[]> { return this.artifacts.listParts(oid, payloadId); }
  async deleteArtifactParts(oid: string, payloadId: string): Promise<void> { await this.artifacts.deleteParts(oid, payloadId); }
  async takeStaleArtifactUploads(receivedBefore: number, limit: number): Promise<Array<{ oid: string; payload_id: string }>> { return this.artifacts.takeStaleUploads(receivedBefore, limit); }
  async createArtifact(artifact: ArtifactRecord): Promise<boolean> { return this.artifacts.createArtifact(artifact); }
  async listUnannouncedArtifacts(limit: number): Promise<ArtifactRecord[]> { return this.artifacts.listUnannouncedArtifacts(limit); }
  async listUnannouncedExports(limit: number): Promise<ArtifactExportRecord[]> { return this.artifacts.listUnannouncedExports(limit); }
  async getArtifact(oid: string, logId: string): Promise<ArtifactRecord | null> { return this.artifacts.getArtifact(oid, logId); }
  async getArtifactByPayloadId(oid: string, payloadId: string): Promise<ArtifactRecord | null> { return this.artifacts.getArtifactByPayloadId(oid, payloadId); }
  async listArtifacts(query: ArtifactListQuery): Promise<ArtifactPage> { return this.artifacts.listArtifacts({ ...query, limit: pageSize(query.limit) }); }
  async takeExpiredArtifacts(now: number, limit: number): Promise<ArtifactRecord[]> { return this.artifacts.takeExpiredArtifacts(now, limit); }
  async isArtifactContentReferenced(sha256: string): Promise<boolean> { return this.artifacts.isContentReferenced(sha256); }
  async artifactBytesStored(oid: string): Promise<number> { return this.artifacts.bytesStored(oid); }
  async createArtifactExport(record: ArtifactExportRecord): Promise<void> { await this.artifacts.createExport(record); }
  async getArtifactExport(oid: string, exportId: string): Promise<ArtifactExportRecord | null> { return this.artifacts.getExport(oid, exportId); }
  async finishArtifactExport(exportId: string, outcome: { state: 'ready'; size: number } | { state: 'failed'; error: string }, at: number): Promise<boolean> { return this.artifacts.finishExport(exportId, outcome, at); }
  async listPendingArtifactExports(): Promise<ArtifactExportRecord[]> { return this.artifacts.listPendingExports(); }
  async takeFinishedArtifactExports(createdBefore: number, limit: number): Promise<ArtifactExportRecord[]> { return this.artifacts.takeFinishedExports(createdBefore, limit); }
}
