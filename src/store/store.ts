// The storage contract. The embedded SQLite store and the PostgreSQL store both implement it and both
// pass test/contract/store-contract.ts unchanged. Callers never know which backend they hold.
import type { CloudAdapterConfig } from '../domain/cloud-adapters.js';
import type { ArtifactExportRecord, ArtifactListQuery, ArtifactPage, ArtifactPartRecord, ArtifactRecord, IngestionKeyRecord } from '../domain/artifacts.js';
import type { OutputConfig, OutputStream } from '../domain/outputs.js';
import type { UsageAmount, UsageDelta } from '../domain/usage.js';
import type { ApiKeyRecord, InstallationKeyRecord, Org, ReenrollOrder, SensorHost, SensorIssue, SensorRecord, SensorTag, TaskRecord, TaskState } from '../domain/records.js';

/** One event as stored: the indexed columns plus the full `{routing, event}` envelope as JSON text. */
export interface StoredEvent {
  oid: string;
  sid: string | null;
  event_type: string;
  /** routing.event_time, Unix ms. */
  event_time: number;
  event_id: string;
  /** The whole envelope, serialised once by the pipeline and returned verbatim by reads. */
  json: string;
  /**
   * The platform stream of a cloud-produced event ("deployment", "audit", ...), readable with
   * queryStream(). null or absent (or "event") for sensor telemetry, which is read per sensor.
   */
  stream?: string | null;
}

/** Highest batch sequence durably stored for one sensor event stream (protocol.md "Sequence numbers"). */
export interface SequenceMark {
  sid: string;
  stream_id: string;
  seq: number;
}

/** A sensor batch inside a group commit: events[start, start + count) carry `mark`. */
export interface MarkedBatch {
  mark: SequenceMark;
  start: number;
  count: number;
}

/** A forward move of a task, applied only from one of the `from` states and only for its own sensor. */
export interface TaskUpdate {
  task_id: string;
  /** The sensor the task was given to: an update naming another sensor changes nothing. */
  sid: string;
  from: ReadonlyArray<TaskState>;
  to: { state: TaskState; at: number; error?: number | null; answer?: string | null };
  /**
   * The answer reports the host isolated (true: segregate_network succeeded) or not (false: rejoin_network
   * succeeded): when the task moves, the sensor's `isolated` follows, as it does from CONNECTED.IS_SEGREGATED.
   */
  isolated?: boolean;
}

/** Task rows written in the same transaction as a group commit of events. */
export interface TaskWrites {
  create?: ReadonlyArray<TaskRecord>;
  update?: ReadonlyArray<TaskUpdate>;
  /**
   * Artifacts (log ids) and exports (export ids) whose `ingest` / `export_complete` is among the events of
   * this commit: marked announced in the same transaction, so the event is stored exactly once even across
   * a crash (an unannounced one is announced again at start).
   */
  announce?: { artifacts?: ReadonlyArray<string>; exports?: ReadonlyArray<string> };
}

export interface TimelineQuery {
  oid: string;
  sid: string;
  /** Inclusive lower bound, Unix ms. */
  start: number;
  /** Inclusive upper bound, Unix ms. */
  end: number;
  eventType?: string;
  limit: number;
  /** Opaque cursor from a previous page's nextCursor. */
  cursor?: string;
  /** true (default): oldest first; false: newest first. */
  forward?: boolean;
}

/** An organization's events of one platform stream over a time range (deployment, audit, ...). */
export interface StreamQuery {
  oid: string;
  stream: string;
  /** Inclusive bounds, Unix ms. */
  start: number;
  end: number;
  limit: number;
  cursor?: string;
  /** true (default): oldest first. */
  forward?: boolean;
}

export interface TimelinePage {
  /** Envelopes as stored (JSON text), in the requested order. */
  events: string[];
  /** Cursor for the next page, or null when this page is the last. */
  nextCursor: string | null;
}

export interface SensorListQuery {
  limit: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
  hostnamePrefix?: string;
  /** Include sensors marked deleted (default false). */
  includeDeleted?: boolean;
}

/** One stored event read back in log order (for outputs). */
export interface LogRow {
  /** Position in the event log: strictly increasing in commit order. */
  seq: number;
  oid: string;
  sid: string | null;
  event_type: string;
  json: string;
}

export interface LogQuery {
  oid: string;
  stream: OutputStream;
  /** Exclusive lower bound on seq. */
  afterSeq: number;
  limit: number;
}

/** The latest error of one component of an organization (e.g. "outputs/siem"), for GET /v1/errors/{oid}. */
export interface OrgError {
  oid: string;
  component: string;
  error: string;
  at: number;
}

export interface SensorPage {
  sensors: SensorRecord[];
  nextCursor: string | null;
}

export interface NewSensor extends SensorHost {
  sid: string;
  oid: string;
  iid: string;
  secret_hash: string;
  tags: string[];
  enroll: number;
}

export interface Store {
  /** Human-readable backend name for logs and /readyz, e.g. "sqlite:/path/picket.db". */
  readonly description: string;

  /** Applies pending migrations; safe to call on every start. */
  migrate(): Promise<void>;
  /** Cheap liveness probe of the backend (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;

  // Organizations
  createOrg(org: Org): Promise<void>;
  /**
   * First start: creates the organization with its first API key and installation key, atomically, only
   * when the store holds no organization yet (several cluster nodes starting on an empty database: one
   * wins). Returns whether it created them.
   */
  bootstrapFirstOrg(org: Org, apiKey: ApiKeyRecord, installationKey: InstallationKeyRecord): Promise<boolean>;
  getOrg(oid: string): Promise<Org | null>;
  listOrgs(): Promise<Org[]>;
  /** Sets the quota and returns the previous one, in one atomic step (null = unlimited). Throws StoreNotFoundError. */
  setOrgQuota(oid: string, quota: number | null): Promise<number | null>;

  // API keys (secret hashed by the caller)
  createApiKey(key: ApiKeyRecord): Promise<void>;
  getApiKey(keyId: string): Promise<ApiKeyRecord | null>;
  listApiKeys(oid: string): Promise<ApiKeyRecord[]>;
  /** Returns false when no such key exists in that org. */
  deleteApiKey(oid: string, keyId: string): Promise<boolean>;

  // Installation keys
  createInstallationKey(key: InstallationKeyRecord): Promise<void>;
  getInstallationKey(iid: string): Promise<InstallationKeyRecord | null>;
  listInstallationKeys(oid: string): Promise<InstallationKeyRecord[]>;
  /** Returns false when no such key exists in that org. Sensors enrolled with it are untouched. */
  deleteInstallationKey(oid: string, iid: string): Promise<boolean>;

  // Sensors
  /** Inserts a new sensor with its initial tags (added by "installation-key"). */
  createSensor(sensor: NewSensor): Promise<void>;
  getSensor(sid: string): Promise<SensorRecord | null>;
  listSensors(oid: string, query: SensorListQuery): Promise<SensorPage>;
  /** Records what the sensor reported in its hello on connect, and the connect time as alive. */
  updateSensorHost(sid: string, host: SensorHost & { isolated: boolean }, alive: number): Promise<void>;
  /** Persists last-seen times in one write (liveness is kept in memory and flushed in batches). */
  touchAlive(updates: ReadonlyArray<{ sid: string; alive: number }>): Promise<void>;
  /** Marks the sensor deleted at `at` (ms); null undeletes. Returns false when the sensor does not exist. */
  setSensorDeleted(sid: string, at: number | null): Promise<boolean>;
  setShouldIsolate(sid: string, value: boolean): Promise<void>;
  /** Records the sensor's latest deployment issue (null clears it). */
  recordSensorIssue(sid: string, issue: SensorIssue | null): Promise<void>;
  /** Places (or with null, withdraws) a re-enroll order. Returns false when the sensor does not exist. */
  setReenrollOrder(sid: string, order: ReenrollOrder | null): Promise<boolean>;
  /**
   * Atomically claims the right to emit a rate-limited notice (e.g. "deleted_sensor at most once per 24 h"):
   * true when no notice of `kind` was claimed for the sensor within the last `windowMs` before `now`
   * (and records `now`), false otherwise. Safe against concurrent callers, including other nodes.
   */
  claimSensorNotice(sid: string, kind: string, now: number, windowMs: number): Promise<boolean>;
  /** Forgets a claimed notice, so that the next claim of that kind succeeds (e.g. after an undelete). */
  clearSensorNotice(sid: string, kind: string): Promise<void>;
  /**
   * Forgets sensors deleted at or before `deletedBefore`: the sensor, its tags, sequence mark and notices
   * (its stored events stay). Returns the forgotten sids, at most `limit` per call.
   */
  forgetDeletedSensors(deletedBefore: number, limit: number): Promise<string[]>;

  // Tags
  /** Current (unexpired at `now`) tags of a sensor, sorted by name. */
  getSensorTags(sid: string, now: number): Promise<SensorTag[]>;
  /** Adds or refreshes tags. */
  addSensorTags(sid: string, tags: ReadonlyArray<SensorTag>): Promise<void>;
  removeSensorTags(sid: string, tags: ReadonlyArray<string>): Promise<void>;

  // Tasks
  createTask(task: TaskRecord): Promise<void>;
  getTask(taskId: string): Promise<TaskRecord | null>;
  /** A sensor's tasks, newest first. */
  listTasks(sid: string, limit: number): Promise<TaskRecord[]>;
  /**
   * The sensor's queued tasks still deliverable at `now`, oldest first; queued tasks past their expiry
   * become `expired` in the same step.
   */
  takeQueuedTasks(sid: string, now: number): Promise<TaskRecord[]>;
  /**
   * Moves a task forward: only from one of the `from` states (so a late CLOUD_NOTIFICATION never undoes an
   * answer). Sets the timestamp column of the new state, and error/answer when given. Returns whether it moved.
   */
  updateTask(taskId: string, from: ReadonlyArray<TaskState>, to: { state: TaskState; at: number; error?: number | null; answer?: string | null }): Promise<boolean>;

  // Outputs
  /** All outputs (of one organization, or of every organization when oid is omitted), by name. */
  listOutputs(oid?: string): Promise<OutputConfig[]>;
  getOutput(oid: string, name: string): Promise<OutputConfig | null>;
  /**
   * Creates or replaces an output. A new output's cursor starts at the end of the log (it delivers what
   * is stored from now on); a replaced one keeps its cursor. Returns whether it was created.
   */
  putOutput(config: OutputConfig): Promise<{ created: boolean }>;
  /** Removes the output, its cursor and its last error. Returns false when it did not exist. */
  deleteOutput(oid: string, name: string): Promise<boolean>;
  /** The last log position the output has delivered (null when the output does not exist). */
  getOutputCursor(oid: string, name: string): Promise<number | null>;
  /** Moves the cursor forward (never back). */
  setOutputCursor(oid: string, name: string, seq: number): Promise<void>;
  /** The organization's stored events of one stream after a log position, in log order. */
  readLog(query: LogQuery): Promise<LogRow[]>;
  /**
   * Where readLog's rows came from, reported after every read: `memory` for the groups a store keeps after
   * committing them (the embedded store's tail of the log), `store` for rows read from the database.
   */
  observeLogReads?(observer: (source: 'memory' | 'store', rows: number) => void): void;
  /** How many of the organization's stored events of one stream lie in (afterSeq, upToSeq]. */
  countLog(query: Omit<LogQuery, 'limit'> & { upToSeq: number }): Promise<number>;
  /** The highest log position stored so far (0 for an empty log). */
  lastLogSeq(): Promise<number>;

  // Errors of an organization's components (outputs, adapters)
  recordOrgError(error: OrgError): Promise<void>;
  clearOrgError(oid: string, component: string): Promise<void>;
  listOrgErrors(oid: string): Promise<OrgError[]>;

  // Cloud adapters (docs/cloud-adapters.md): ingestion sources the cloud runs for an organization
  /** All cloud adapters (of one organization, or of every organization when oid is omitted), by name. */
  listCloudAdapters(oid?: string): Promise<CloudAdapterConfig[]>;
  getCloudAdapter(oid: string, name: string): Promise<CloudAdapterConfig | null>;
  /** Creates or replaces an adapter; a replaced one keeps its cursor unless its type changed. Returns whether it was created. */
  putCloudAdapter(config: CloudAdapterConfig): Promise<{ created: boolean }>;
  /** Removes the adapter, its cursor and its last error. Returns false when it did not exist. */
  deleteCloudAdapter(oid: string, name: string): Promise<boolean>;
  /** Disables an enabled adapter with its last error, atomically: true only for the call that disabled it. */
  disableCloudAdapter(oid: string, name: string, at: number, error: string): Promise<boolean>;
  /** Enables the adapter (clearing its disabled state). Returns false when it does not exist. */
  enableCloudAdapter(oid: string, name: string, at: number): Promise<boolean>;
  /** Where a polling adapter resumes (null: from the start). */
  getCloudAdapterCursor(oid: string, name: string): Promise<string | null>;
  setCloudAdapterCursor(oid: string, name: string, cursor: string | null): Promise<void>;

  // Usage metering and schedule ticks (docs/schedule-and-billing.md; SQLite: usage-tables.ts)
  /** Applies counter changes in one transaction (the meter flushes in batches, never per event). */
  addUsage(deltas: ReadonlyArray<UsageDelta>): Promise<void>;
  /** An organization's counters of the periods in [fromPeriod, toPeriod], by period, cat, k. */
  listUsage(oid: string, fromPeriod: number, toPeriod: number): Promise<UsageAmount[]>;
  /** Every organization's counters of one period. */
  usageOfPeriod(period: number): Promise<UsageAmount[]>;
  /** Periods before `before` that have counters and whose billing records are not stored yet, oldest first. */
  unclosedUsagePeriods(before: number): Promise<number[]>;
  /**
   * Stores the period's billing_record events and marks the period closed, in one transaction: true only
   * for the call that closed it (a period already closed stores nothing), so records are never doubled.
   */
  closeUsagePeriod(period: number, events: ReadonlyArray<StoredEvent>, at: number): Promise<boolean>;
  /** The last period emitted per schedule frequency ("30m" ... "168h"), Unix ms. */
  getScheduleMarks(): Promise<Record<string, number>>;
  /** Records `period` as emitted for `frequency` if it is later than the recorded one: true when it moved. */
  claimSchedulePeriod(frequency: string, period: number): Promise<boolean>;
  /** Sensors (not deleted) whose last-seen time is at or after `since`, with their current tags. */
  listSensorsSeenSince(since: number): Promise<SensorRecord[]>;

  // Artifacts (docs/artifacts.md; SQLite: artifact-tables.ts). The content is on disk, addressed by sha256.
  /** Rejects with StoreConflictError when the organization has a key of that name. */
  createIngestionKey(key: IngestionKeyRecord): Promise<void>;
  getIngestionKey(keyId: string): Promise<IngestionKeyRecord | null>;
  /** An organization's ingestion keys, by (created, key_id). */
  listIngestionKeys(oid: string): Promise<IngestionKeyRecord[]>;
  /** Returns false when the organization has no key of that name. */
  deleteIngestionKey(oid: string, name: string): Promise<boolean>;
  /** Records a received part of a multi-part upload: false (and nothing changed) when that part was already received. */
  putArtifactPart(part: ArtifactPartRecord): Promise<boolean>;
  /** The received parts of an upload, by part number. */
  listArtifactParts(oid: string, payloadId: string): Promise<ArtifactPartRecord[]>;
  deleteArtifactParts(oid: string, payloadId: string): Promise<void>;
  /** Forgets uploads whose newest part was received before `receivedBefore`; returns them, at most `limit`. */
  takeStaleArtifactUploads(receivedBefore: number, limit: number): Promise<Array<{ oid: string; payload_id: string }>>;
  /**
   * Stores an artifact and forgets its upload's parts, atomically: true only for the call that stored it; false
   * (nothing changed) when the organization already has an artifact with that payload_id.
   */
  createArtifact(artifact: ArtifactRecord): Promise<boolean>;
  /** Stored artifacts whose `ingest` event is not stored yet (a crash came in between), oldest first. */
  listUnannouncedArtifacts(limit: number): Promise<ArtifactRecord[]>;
  /** Ready exports whose `export_complete` event is not stored yet, oldest first. */
  listUnannouncedExports(limit: number): Promise<ArtifactExportRecord[]>;
  getArtifact(oid: string, logId: string): Promise<ArtifactRecord | null>;
  getArtifactByPayloadId(oid: string, payloadId: string): Promise<ArtifactRecord | null>;
  /** An organization's artifacts created in [start, end], by (created, log_id), a page at a time. */
  listArtifacts(query: ArtifactListQuery): Promise<ArtifactPage>;
  /** Deletes artifacts whose expiry is at or before `now` and returns them (at most `limit`), so their content can go. */
  takeExpiredArtifacts(now: number, limit: number): Promise<ArtifactRecord[]>;
  /** Whether any artifact (of any organization) still has this content. */
  isArtifactContentReferenced(sha256: string): Promise<boolean>;
  /** Bytes of artifacts the organization keeps stored now. */
  artifactBytesStored(oid: string): Promise<number>;
  createArtifactExport(record: ArtifactExportRecord): Promise<void>;
  getArtifactExport(oid: string, exportId: string): Promise<ArtifactExportRecord | null>;
  /** Moves a pending export to ready or failed: true only for the call that moved it. */
  finishArtifactExport(exportId: string, outcome: { state: 'ready'; size: number } | { state: 'failed'; error: string }, at: number): Promise<boolean>;
  /** Exports still being packaged (to resume after a restart), oldest first. */
  listPendingArtifactExports(): Promise<ArtifactExportRecord[]>;
  /** Deletes finished exports created before `createdBefore` and returns them (at most `limit`). */
  takeFinishedArtifactExports(createdBefore: number, limit: number): Promise<ArtifactExportRecord[]>;

  // Events
  /**
   * Durably appends events and advances sequence marks in one transaction: when the promise resolves,
   * both survive a crash (this is what an ACK promises). Marks only move forward for the same stream_id;
   * a mark with a new stream_id replaces the old one. Task rows created or moved in `tasks` are part of the
   * same transaction (tasking rides the group commit: one fsync for many tasks).
   *
   * `batches` names the sensor batches among `events` with the mark each carries: a store shared by several
   * nodes re-reads the stored marks inside the transaction and leaves out every batch already at or below
   * its stream's mark (another node committed it a moment ago: a sensor's resend racing the commit of the
   * node it left), so a batch is stored once however the nodes interleave. One node alone never races
   * itself (the gateway orders a sensor's sessions), so the embedded store may ignore it.
   */
  appendEvents(events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks?: TaskWrites, batches?: ReadonlyArray<MarkedBatch>): Promise<void>;
  /**
   * How many appendEvents calls may be outstanding at once (1 when absent). A store that allows more
   * commits them in call order and fails every append issued after a failed one (until that failure is
   * reported), so no batch is ever stored after an earlier batch that was not.
   */
  readonly appendPipelineDepth?: number;
  getSequenceMark(sid: string): Promise<SequenceMark | null>;
  /** One sensor's events over a time range, optionally of one event type: one indexed read per page. */
  queryTimeline(query: TimelineQuery): Promise<TimelinePage>;
  /** An organization's events of one platform stream over a time range: one indexed read per page. */
  queryStream(query: StreamQuery): Promise<TimelinePage>;
}
