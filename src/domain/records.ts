// The records Picket keeps about its tenants and fleet. Times are Unix milliseconds unless named otherwise.

export interface Org {
  oid: string;
  name: string;
  /** Most sensors online at once; null = unlimited. */
  quota: number | null;
  created: number;
}

/** root: admin of its org and may create organizations; admin: everything in its org; read: GET only in its org. */
export type ApiKeyRole = 'root' | 'admin' | 'read';

export interface ApiKeyRecord {
  key_id: string;
  oid: string;
  name: string;
  role: ApiKeyRole;
  /** Hash of the secret part (see services/secrets.ts); the secret itself is never stored. */
  secret_hash: string;
  created: number;
}

export interface InstallationKeyRecord {
  iid: string;
  oid: string;
  desc: string;
  tags: string[];
  secret_hash: string;
  created: number;
}

export interface SensorHost {
  hostname: string;
  plat: number;
  arch: number;
  int_ip: string;
  ext_ip: string;
  mac: string;
  /** Stable host fingerprint reported by the sensor (machine id, MAC...), hashed by the sensor. */
  fingerprint: string;
  sensor_version: string;
  /** Sensor has a kernel acquisition component. */
  kernel: boolean;
}

export interface SensorRecord extends SensorHost {
  sid: string;
  oid: string;
  iid: string;
  did: string | null;
  secret_hash: string;
  tags: string[];
  enroll: number;
  /** Last time the sensor was seen alive (persisted in batches); null before its first session. */
  alive: number | null;
  /** Sensor reports being network-isolated right now. */
  isolated: boolean;
  /** Persistent isolation flag set by an operator, re-applied on reconnect. */
  should_isolate: boolean;
  /** When the sensor was deleted; null when not deleted. */
  deleted: number | null;
  /** The latest deployment issue (a refusal or a crash); null when there was none. */
  issue: SensorIssue | null;
  /** A pending re-enroll order; null when there is none. */
  reenroll: ReenrollOrder | null;
}

/** Why the cloud last refused a sensor, or that it crashed: shown to operators as the sensor's reason. */
export type SensorIssueKind = 'over_quota' | 'clone' | 'deleted' | 'crash';

export interface SensorIssue {
  kind: SensorIssueKind;
  /** Readable explanation, e.g. "organization at its quota of 2 sensors online; retry after 60 s". */
  reason: string;
  /** Unix ms. */
  at: number;
}

/** An operator's order that a copy of the sensor drop its identity and enroll as a new sensor. */
export interface ReenrollOrder {
  /** The copy it applies to, by hostname; null: whichever copy connects next (or the live one). */
  hostname: string | null;
  /** Unix ms the order was placed. */
  at: number;
}

/** A tag on a sensor, with who added it and when (ms); expires null = never. */
export interface SensorTag {
  tag: string;
  by: string;
  added: number;
  expires: number | null;
}

/** A tag as a live session routes it: its name, and when it stops being routed (null: never). */
export type TagState = Pick<SensorTag, 'tag' | 'expires'>;

/**
 * What became of a task: queued (waiting for the sensor's next session), sent, received (the sensor's
 * CLOUD_NOTIFICATION arrived), answered (its result arrived), expired (its time-to-live ran out first).
 */
export type TaskState = 'queued' | 'sent' | 'received' | 'answered' | 'expired';

export interface TaskRecord {
  task_id: string;
  oid: string;
  sid: string;
  /** The command line as given. */
  command: string;
  investigation_id: string | null;
  created: number;
  /**
   * Deliver until then (Unix ms): the time-to-live of a queued task, or the 10 minutes a live task is
   * given (the EXPIRY the sensor is told). null only in rows written before every task had one.
   */
  expires: number | null;
  state: TaskState;
  sent_at: number | null;
  received_at: number | null;
  answered_at: number | null;
  /** ERROR of the answer (0 = success). */
  error: number | null;
  /** The answering event's envelope, as stored. */
  answer: string | null;
}
