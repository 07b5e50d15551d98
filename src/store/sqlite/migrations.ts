// Versioned schema of the embedded store. Migrations are applied in order, each in its own IMMEDIATE
// transaction together with its row in `schema_migrations`, so a crash mid-migration leaves the previous
// version intact and two processes migrating the same file at once apply each version exactly once.
// Never edit a released migration: append a new one.
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE orgs (
        oid     TEXT PRIMARY KEY,
        name    TEXT NOT NULL,
        quota   INTEGER,
        created INTEGER NOT NULL
      );

      CREATE TABLE api_keys (
        key_id      TEXT PRIMARY KEY,
        oid         TEXT NOT NULL REFERENCES orgs(oid),
        name        TEXT NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('root', 'admin', 'read')),
        secret_hash TEXT NOT NULL,
        created     INTEGER NOT NULL
      );
      CREATE INDEX api_keys_by_org ON api_keys(oid, created);

      CREATE TABLE installation_keys (
        iid         TEXT PRIMARY KEY,
        oid         TEXT NOT NULL REFERENCES orgs(oid),
        description TEXT NOT NULL,
        tags        TEXT NOT NULL DEFAULT '[]', -- JSON array of tag names
        secret_hash TEXT NOT NULL,
        created     INTEGER NOT NULL
      );
      CREATE INDEX installation_keys_by_org ON installation_keys(oid, created);

      -- iid has no foreign key: deleting an installation key leaves the sensors enrolled with it.
      CREATE TABLE sensors (
        sid            TEXT PRIMARY KEY,
        oid            TEXT NOT NULL REFERENCES orgs(oid),
        iid            TEXT NOT NULL,
        did            TEXT,
        secret_hash    TEXT NOT NULL,
        plat           INTEGER NOT NULL,
        arch           INTEGER NOT NULL,
        hostname       TEXT NOT NULL,
        ext_ip         TEXT NOT NULL,
        int_ip         TEXT NOT NULL,
        mac            TEXT NOT NULL,
        fingerprint    TEXT NOT NULL,
        sensor_version TEXT NOT NULL,
        kernel         INTEGER NOT NULL,
        enroll         INTEGER NOT NULL,
        alive          INTEGER,
        isolated       INTEGER NOT NULL DEFAULT 0,
        should_isolate INTEGER NOT NULL DEFAULT 0,
        deleted        INTEGER
      );
      -- Keyset paging of one org's sensors by sid.
      CREATE INDEX sensors_by_org ON sensors(oid, sid);

      CREATE TABLE sensor_tags (
        sid      TEXT NOT NULL REFERENCES sensors(sid),
        tag      TEXT NOT NULL,
        added_by TEXT NOT NULL,
        added    INTEGER NOT NULL,
        expires  INTEGER,
        PRIMARY KEY (sid, tag)
      ) WITHOUT ROWID;

      -- Append-only event log. seq is the insertion order (an explicit INTEGER PRIMARY KEY, so VACUUM
      -- never renumbers it) and breaks ties between equal event_time in timeline cursors. Every index
      -- of a rowid table ends with the rowid, so both indexes below are really (..., event_time, seq):
      -- one sensor's timeline over a range, with or without a type filter, is one index range scan in
      -- cursor order. No foreign keys and no unique event_id: the group commit must never fail on a
      -- lookup, and duplicates are prevented upstream by sequence_marks.
      CREATE TABLE events (
        seq        INTEGER PRIMARY KEY,
        oid        TEXT NOT NULL,
        sid        TEXT,
        event_type TEXT NOT NULL,
        event_time INTEGER NOT NULL,
        event_id   TEXT NOT NULL,
        json       TEXT NOT NULL
      );
      CREATE INDEX events_by_sensor_time ON events(sid, event_time);
      CREATE INDEX events_by_sensor_type_time ON events(sid, event_type, event_time);

      CREATE TABLE sequence_marks (
        sid       TEXT PRIMARY KEY,
        stream_id TEXT NOT NULL,
        seq       INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'deployment guards and platform streams',
    sql: `
      -- The stream of platform events (deployment, audit, billing, ...); NULL for sensor telemetry (the
      -- "event" stream), so the partial index below never slows the telemetry insert path down.
      ALTER TABLE events ADD COLUMN stream TEXT;
      CREATE INDEX events_by_org_stream_time ON events(oid, stream, event_time) WHERE stream IS NOT NULL;

      -- The last deployment issue of a sensor (refused over quota, as a clone, while deleted; crashed):
      -- what an operator sees as the sensor's state and reason.
      ALTER TABLE sensors ADD COLUMN issue_kind TEXT;
      ALTER TABLE sensors ADD COLUMN issue_reason TEXT;
      ALTER TABLE sensors ADD COLUMN issue_at INTEGER;
      -- A pending re-enroll order: the copy (by hostname, or '' for whichever connects) must enroll anew.
      ALTER TABLE sensors ADD COLUMN reenroll_hostname TEXT;
      ALTER TABLE sensors ADD COLUMN reenroll_at INTEGER;
      -- Finding the deleted sensors due to be forgotten.
      CREATE INDEX sensors_deleted ON sensors(deleted) WHERE deleted IS NOT NULL;

      -- Rate limits of deployment events ("at most once per sensor per window"): one row per sensor and
      -- kind, claimed atomically with a conditional upsert, so that it also holds across cluster nodes.
      CREATE TABLE sensor_notices (
        sid  TEXT NOT NULL,
        kind TEXT NOT NULL,
        at   INTEGER NOT NULL,
        PRIMARY KEY (sid, kind)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    name: 'tasks',
    sql: `
      -- Tasks sent (or queued) to sensors and what became of them. expires NULL: for a live session only.
      CREATE TABLE tasks (
        task_id          TEXT PRIMARY KEY,
        oid              TEXT NOT NULL,
        sid              TEXT NOT NULL,
        command          TEXT NOT NULL,
        investigation_id TEXT,
        created          INTEGER NOT NULL,
        expires          INTEGER,
        state            TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'received', 'answered', 'expired')),
        sent_at          INTEGER,
        received_at      INTEGER,
        answered_at      INTEGER,
        error            INTEGER,
        answer           TEXT
      );
      CREATE INDEX tasks_by_sensor ON tasks(sid, created);
      CREATE INDEX tasks_queued ON tasks(sid, created) WHERE state = 'queued';
    `,
  },
  {
    version: 4,
    name: 'outputs',
    sql: `
      -- Where an organization's events go (platform-reference.md §4.2). filters, shape and fields are JSON.
      CREATE TABLE outputs (
        oid     TEXT NOT NULL,
        name    TEXT NOT NULL,
        module  TEXT NOT NULL,
        stream  TEXT NOT NULL,
        filters TEXT NOT NULL,
        shape   TEXT NOT NULL,
        fields  TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        PRIMARY KEY (oid, name)
      ) WITHOUT ROWID;
      -- Each output's durable queue is the event log itself: the output has delivered everything up to seq.
      CREATE TABLE output_cursors (
        oid  TEXT NOT NULL,
        name TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        PRIMARY KEY (oid, name)
      ) WITHOUT ROWID;
      -- Platform streams read in log order by outputs (telemetry is read through the primary key).
      CREATE INDEX events_by_org_stream_seq ON events(oid, stream, seq) WHERE stream IS NOT NULL;
      -- The latest error per component of an organization (GET /v1/errors/{oid}).
      CREATE TABLE org_errors (
        oid       TEXT NOT NULL,
        component TEXT NOT NULL,
        error     TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (oid, component)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 5,
    name: 'artifacts',
    sql: `
      -- Keys artifact uploaders authenticate with (POST /ingest, docs/artifacts.md); only the secret's hash is kept.
      CREATE TABLE ingestion_keys (
        key_id      TEXT PRIMARY KEY,
        oid         TEXT NOT NULL REFERENCES orgs(oid),
        name        TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created     INTEGER NOT NULL,
        UNIQUE (oid, name)
      );
      -- Stored artifacts; the content is the file artifacts/<sha256[0:2]>/<sha256> in the data directory.
      CREATE TABLE artifacts (
        log_id        TEXT PRIMARY KEY,
        oid           TEXT NOT NULL REFERENCES orgs(oid),
        payload_id    TEXT NOT NULL,
        log_type      TEXT NOT NULL,
        source        TEXT NOT NULL,
        original_path TEXT NOT NULL,
        size          INTEGER NOT NULL,
        sha256        TEXT NOT NULL,
        md5           TEXT NOT NULL,
        created       INTEGER NOT NULL,
        expires       INTEGER NOT NULL,
        -- 1 once its ingest event is stored (set in the same transaction as the event).
        announced     INTEGER NOT NULL DEFAULT 0,
        UNIQUE (oid, payload_id)
      );
      CREATE INDEX artifacts_unannounced ON artifacts(created) WHERE announced = 0;
      CREATE INDEX artifacts_by_org ON artifacts(oid, created, log_id);
      CREATE INDEX artifacts_by_expiry ON artifacts(expires);
      CREATE INDEX artifacts_by_sha256 ON artifacts(sha256);
      -- Parts of multi-part uploads not finished yet (their bytes are files under artifacts/parts/).
      CREATE TABLE artifact_parts (
        oid        TEXT NOT NULL,
        payload_id TEXT NOT NULL,
        part       INTEGER NOT NULL,
        size       INTEGER NOT NULL,
        received   INTEGER NOT NULL,
        PRIMARY KEY (oid, payload_id, part)
      ) WITHOUT ROWID;
      CREATE TABLE artifact_exports (
        export_id TEXT PRIMARY KEY,
        oid       TEXT NOT NULL REFERENCES orgs(oid),
        log_ids   TEXT NOT NULL, -- JSON array
        state     TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
        size      INTEGER NOT NULL DEFAULT 0,
        error     TEXT,
        created   INTEGER NOT NULL,
        completed INTEGER,
        -- 1 once its export_complete event is stored (same transaction as the event).
        announced INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX artifact_exports_by_state ON artifact_exports(state, created);
    `,
  },
  {
    version: 6,
    name: 'usage metering and schedule ticks',
    sql: `
      -- Usage of each organization per billing period (docs/schedule-and-billing.md): period is the start
      -- of the period (Unix ms), cat/k the billing_record's category and key, v the amount.
      CREATE TABLE usage_counters (
        oid    TEXT NOT NULL,
        period INTEGER NOT NULL,
        cat    TEXT NOT NULL,
        k      TEXT NOT NULL,
        v      REAL NOT NULL,
        PRIMARY KEY (oid, period, cat, k)
      ) WITHOUT ROWID;
      -- Periods whose billing_record events are stored (written in the same transaction as the events).
      CREATE TABLE usage_periods (
        period INTEGER PRIMARY KEY,
        closed INTEGER NOT NULL
      );
      -- The last period emitted per schedule frequency ("30m" ... "168h"), start of the period in Unix ms.
      CREATE TABLE schedule_marks (
        frequency TEXT PRIMARY KEY,
        period    INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- Sensors seen since a time (schedule eligibility).
      CREATE INDEX sensors_alive ON sensors(alive) WHERE alive IS NOT NULL;
    `,
  },
  {
    version: 7,
    name: 'cloud adapters',
    sql: `
      -- Ingestion sources the cloud runs for an organization (docs/cloud-adapters.md). mapping and settings
      -- are JSON; cursor is where a poller resumes after a restart.
      CREATE TABLE cloud_adapters (
        oid            TEXT NOT NULL,
        name           TEXT NOT NULL,
        type           TEXT NOT NULL,
        platform       TEXT NOT NULL,
        hostname       TEXT NOT NULL,
        mapping        TEXT NOT NULL,
        settings       TEXT NOT NULL,
        grace_period   REAL,
        enabled        INTEGER NOT NULL,
        disabled_at    INTEGER,
        disabled_error TEXT,
        cursor         TEXT,
        created        INTEGER NOT NULL,
        updated        INTEGER NOT NULL,
        PRIMARY KEY (oid, name)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 8,
    name: 'one timeline index',
    sql: `
      -- One index serves both timeline shapes. Index upkeep is most of what an event insert costs: every
      -- group commit writes each index page it touched to the WAL in full, and with many sensors a commit
      -- touches a page per sensor per index. Measured on the store alone (1,000 sensors, groups of 2,000,
      -- FULL sync): two indexes 14-22k events/s, this one 26-29k. A type-filtered timeline is a range
      -- scan of (sid, event_time) that tests event_type in the index itself, reading only matching rows;
      -- ties on event_time are put in seq order by a sort of each tie group (docs/performance.md).
      CREATE INDEX events_by_sensor_time_type ON events(sid, event_time, event_type);
      DROP INDEX events_by_sensor_type_time;
      DROP INDEX events_by_sensor_time;
    `,
  },
];

const TRACKING_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    applied INTEGER NOT NULL
  )`;

/** Thrown when the database was migrated by a newer Picket than this one. */
export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
}

function checkOrder(migrations: readonly Migration[]): void {
  let last = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= last) {
      throw new Error(`migration versions must be increasing integers > 0: ${m.version} follows ${last}`);
    }
    last = m.version;
  }
}

/** The highest applied version (0 for a new database). */
export function schemaVersion(db: Database.Database): number {
  db.exec(TRACKING_TABLE);
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

function assertNotNewer(db: Database.Database, latest: number): void {
  const current = schemaVersion(db);
  if (current > latest) {
    throw new SchemaTooNewError(
      `database schema version ${current} is newer than this Picket knows (up to ${latest}); ` +
        'upgrade Picket or restore a backup of the data directory',
    );
  }
}

/**
 * Applies the pending migrations; returns the versions applied now (empty when already up to date).
 * Fails without changing anything when the database has a version this code does not know.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS, now: () => number = Date.now): number[] {
  checkOrder(migrations);
  const latest = migrations.at(-1)?.version ?? 0;
  assertNotNewer(db, latest);
  const hasVersion = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').pluck();
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)');
  const applied: number[] = [];
  for (const m of migrations) {
    const step = db.transaction(() => {
      // Re-checked under the write lock: another process may have migrated meanwhile.
      assertNotNewer(db, latest);
      if (hasVersion.get(m.version) !== undefined) return;
      db.exec(m.sql);
      record.run(m.version, m.name, now());
      applied.push(m.version);
    });
    step.immediate();
  }
  return applied;
}
