// The storage contract. The embedded SQLite store and the PostgreSQL store both implement it and both
// pass test/contract/store-contract.ts unchanged. Callers never know which backend they hold.
import type { OutputConfig, OutputStream } from '../domain/outputs.js';
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

/** A forward move of a task, applied only from one of the `from` states and only for its own sensor. */
export interface TaskUpdate {
  task_id: string;
  /** The sensor the task was given to: an update naming another sensor changes nothing. */
  sid: string;
  from: ReadonlyArray<TaskState>;
  to: { state: TaskState; at: number; error?: number | null; answer?: string | null };
}

/** Task rows written in the same transaction as a group commit of events. */
export interface TaskWrites {
  create?: ReadonlyArray<TaskRecord>;
  update?: ReadonlyArray<TaskUpdate>;
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
  /** How many of the organization's stored events of one stream lie in (afterSeq, upToSeq]. */
  countLog(query: Omit<LogQuery, 'limit'> & { upToSeq: number }): Promise<number>;
  /** The highest log position stored so far (0 for an empty log). */
  lastLogSeq(): Promise<number>;

  // Errors of an organization's components (outputs, adapters)
  recordOrgError(error: OrgError): Promise<void>;
  clearOrgError(oid: string, component: string): Promise<void>;
  listOrgErrors(oid: string): Promise<OrgError[]>;

  // Events
  /**
   * Durably appends events and advances sequence marks in one transaction: when the promise resolves,
   * both survive a crash (this is what an ACK promises). Marks only move forward for the same stream_id;
   * a mark with a new stream_id replaces the old one. Task rows created or moved in `tasks` are part of the
   * same transaction (tasking rides the group commit: one fsync for many tasks).
   */
  appendEvents(events: ReadonlyArray<StoredEvent>, marks: ReadonlyArray<SequenceMark>, tasks?: TaskWrites): Promise<void>;
  getSequenceMark(sid: string): Promise<SequenceMark | null>;
  /** One sensor's events over a time range, optionally of one event type: one indexed read per page. */
  queryTimeline(query: TimelineQuery): Promise<TimelinePage>;
  /** An organization's events of one platform stream over a time range: one indexed read per page. */
  queryStream(query: StreamQuery): Promise<TimelinePage>;
}
