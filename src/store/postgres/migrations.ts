// Versioned schema of the PostgreSQL store. Migrations are applied in order, each in its own transaction
// together with its row in `schema_migrations` (PostgreSQL DDL is transactional, so a failing migration
// leaves nothing behind). Each transaction first takes an advisory lock for this schema
// (pg_advisory_xact_lock, connection.ts), then re-reads the applied versions: several nodes starting at
// once apply each version exactly once, the others wait and then find it applied. A schema migrated by
// a newer Picket (a version this code does not know) is refused, as with SQLite.
// Never edit a released migration: append a new one.
//
// Column types: times are Unix ms in BIGINT (parsed into JS numbers, connection.ts); flags are BOOLEAN;
// lists of names (tags, log ids) are TEXT[]; configuration documents (output filters, adapter settings)
// are TEXT holding the JSON the API wrote, returned as written (the store never looks inside them, and
// JSONB would reorder their keys). Identifiers and names that lists are ordered or paged by are
// COLLATE "C": byte order, the same as SQLite's BINARY, whatever the database's default collation; it
// also makes hostname ILIKE ASCII-only case-insensitive, as the contract wants.
//
// The events table is range-partitioned by event_time; see the comment on it below and partitions.ts.
import type pg from 'pg';
import { SchemaTooNewError } from '../sqlite/migrations.js';
import { LOCK, lockXact, withTransaction } from './connection.js';

// The class is backend-neutral (it lives with the SQLite migrations because that store came first):
// callers catch one SchemaTooNewError whichever store they run.
export { SchemaTooNewError };

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Identifier text: compared and ordered bytewise. */
const ID = 'TEXT COLLATE "C"';

/** 2000-01-01 and 2100-01-01 UTC: monthly partitions cover this span, two catch-alls the rest (partitions.ts). */
export const MONTHLY_FROM = Date.UTC(2000, 0, 1);
export const MONTHLY_UNTIL = Date.UTC(2100, 0, 1);

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE orgs (
        oid     ${ID} PRIMARY KEY,
        name    TEXT NOT NULL,
        quota   BIGINT,
        created BIGINT NOT NULL
      );

      CREATE TABLE api_keys (
        key_id      ${ID} PRIMARY KEY,
        oid         ${ID} NOT NULL REFERENCES orgs(oid),
        name        TEXT NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('root', 'admin', 'read')),
        secret_hash TEXT NOT NULL,
        created     BIGINT NOT NULL
      );
      CREATE INDEX api_keys_by_org ON api_keys (oid, created, key_id);

      CREATE TABLE installation_keys (
        iid         ${ID} PRIMARY KEY,
        oid         ${ID} NOT NULL REFERENCES orgs(oid),
        description TEXT NOT NULL,
        tags        TEXT[] NOT NULL DEFAULT '{}',
        secret_hash TEXT NOT NULL,
        created     BIGINT NOT NULL
      );
      CREATE INDEX installation_keys_by_org ON installation_keys (oid, created, iid);

      -- iid has no foreign key: deleting an installation key leaves the sensors enrolled with it.
      CREATE TABLE sensors (
        sid               ${ID} PRIMARY KEY,
        oid               ${ID} NOT NULL REFERENCES orgs(oid),
        iid               ${ID} NOT NULL,
        did               TEXT,
        secret_hash       TEXT NOT NULL,
        plat              BIGINT NOT NULL,
        arch              BIGINT NOT NULL,
        hostname          ${ID} NOT NULL,
        ext_ip            TEXT NOT NULL,
        int_ip            TEXT NOT NULL,
        mac               TEXT NOT NULL,
        fingerprint       TEXT NOT NULL,
        sensor_version    TEXT NOT NULL,
        kernel            BOOLEAN NOT NULL,
        enroll            BIGINT NOT NULL,
        alive             BIGINT,
        isolated          BOOLEAN NOT NULL DEFAULT false,
        should_isolate    BOOLEAN NOT NULL DEFAULT false,
        deleted           BIGINT,
        -- The last deployment issue (over quota, clone, deleted, crash).
        issue_kind        TEXT,
        issue_reason      TEXT,
        issue_at          BIGINT,
        -- A pending re-enroll order: the copy (by hostname, or '' for whichever connects) must enroll anew.
        reenroll_hostname TEXT,
        reenroll_at       BIGINT
      );
      -- Keyset paging of one org's sensors by sid.
      CREATE INDEX sensors_by_org ON sensors (oid, sid);
      -- The deleted sensors due to be forgotten; the sensors seen since a time (schedule eligibility).
      CREATE INDEX sensors_deleted ON sensors (deleted) WHERE deleted IS NOT NULL;
      CREATE INDEX sensors_alive ON sensors (alive) WHERE alive IS NOT NULL;

      CREATE TABLE sensor_tags (
        sid      ${ID} NOT NULL REFERENCES sensors(sid),
        tag      ${ID} NOT NULL,
        added_by TEXT NOT NULL,
        added    BIGINT NOT NULL,
        expires  BIGINT,
        PRIMARY KEY (sid, tag)
      );

      -- Rate limits of deployment notices, claimed with a conditional upsert (atomic across nodes).
      CREATE TABLE sensor_notices (
        sid  ${ID} NOT NULL,
        kind ${ID} NOT NULL,
        at   BIGINT NOT NULL,
        PRIMARY KEY (sid, kind)
      );

      CREATE TABLE sequence_marks (
        sid       ${ID} PRIMARY KEY,
        stream_id TEXT NOT NULL,
        seq       BIGINT NOT NULL
      );

      -- Tasks sent (or queued) to sensors and what became of them. expires NULL: for a live session only.
      CREATE TABLE tasks (
        task_id          ${ID} PRIMARY KEY,
        oid              ${ID} NOT NULL,
        sid              ${ID} NOT NULL,
        command          TEXT NOT NULL,
        investigation_id TEXT,
        created          BIGINT NOT NULL,
        expires          BIGINT,
        state            TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'received', 'answered', 'expired')),
        sent_at          BIGINT,
        received_at      BIGINT,
        answered_at      BIGINT,
        error            BIGINT,
        answer           TEXT
      );
      CREATE INDEX tasks_by_sensor ON tasks (sid, created, task_id);
      CREATE INDEX tasks_queued ON tasks (sid, created, task_id) WHERE state = 'queued';

      -- Where an organization's events go. filters, shape and fields are JSON text.
      CREATE TABLE outputs (
        oid     ${ID} NOT NULL,
        name    ${ID} NOT NULL,
        module  TEXT NOT NULL,
        stream  TEXT NOT NULL,
        filters TEXT NOT NULL,
        shape   TEXT NOT NULL,
        fields  TEXT NOT NULL,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        PRIMARY KEY (oid, name)
      );
      -- Each output's durable queue is the event log itself: the output has delivered everything up to seq.
      CREATE TABLE output_cursors (
        oid  ${ID} NOT NULL,
        name ${ID} NOT NULL,
        seq  BIGINT NOT NULL,
        PRIMARY KEY (oid, name)
      );
      -- The latest error per component of an organization (GET /v1/errors/{oid}).
      CREATE TABLE org_errors (
        oid       ${ID} NOT NULL,
        component ${ID} NOT NULL,
        error     TEXT NOT NULL,
        at        BIGINT NOT NULL,
        PRIMARY KEY (oid, component)
      );

      -- Keys artifact uploaders authenticate with; only the secret's hash is kept.
      CREATE TABLE ingestion_keys (
        key_id      ${ID} PRIMARY KEY,
        oid         ${ID} NOT NULL REFERENCES orgs(oid),
        name        ${ID} NOT NULL,
        secret_hash TEXT NOT NULL,
        created     BIGINT NOT NULL,
        UNIQUE (oid, name)
      );
      -- Stored artifacts; the content is a file addressed by sha256 in the data directory.
      CREATE TABLE artifacts (
        log_id        ${ID} PRIMARY KEY,
        oid           ${ID} NOT NULL REFERENCES orgs(oid),
        payload_id    ${ID} NOT NULL,
        log_type      TEXT NOT NULL,
        source        ${ID} NOT NULL,
        original_path TEXT NOT NULL,
        size          BIGINT NOT NULL,
        sha256        ${ID} NOT NULL,
        md5           TEXT NOT NULL,
        created       BIGINT NOT NULL,
        expires       BIGINT NOT NULL,
        -- true once its ingest event is stored (set in the same transaction as the event).
        announced     BOOLEAN NOT NULL DEFAULT false,
        UNIQUE (oid, payload_id)
      );
      CREATE INDEX artifacts_unannounced ON artifacts (created, log_id) WHERE NOT announced;
      CREATE INDEX artifacts_by_org ON artifacts (oid, created, log_id);
      CREATE INDEX artifacts_by_expiry ON artifacts (expires);
      CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);
      -- Parts of multi-part uploads not finished yet.
      CREATE TABLE artifact_parts (
        oid        ${ID} NOT NULL,
        payload_id ${ID} NOT NULL,
        part       BIGINT NOT NULL,
        size       BIGINT NOT NULL,
        received   BIGINT NOT NULL,
        PRIMARY KEY (oid, payload_id, part)
      );
      CREATE TABLE artifact_exports (
        export_id ${ID} PRIMARY KEY,
        oid       ${ID} NOT NULL REFERENCES orgs(oid),
        log_ids   TEXT[] NOT NULL,
        state     TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'failed')),
        size      BIGINT NOT NULL DEFAULT 0,
        error     TEXT,
        created   BIGINT NOT NULL,
        completed BIGINT,
        -- true once its export_complete event is stored (same transaction as the event).
        announced BOOLEAN NOT NULL DEFAULT false
      );
      CREATE INDEX artifact_exports_by_state ON artifact_exports (state, created);

      -- Usage of each organization per billing period: period is the start of the period (Unix ms).
      CREATE TABLE usage_counters (
        oid    ${ID} NOT NULL,
        period BIGINT NOT NULL,
        cat    ${ID} NOT NULL,
        k      ${ID} NOT NULL,
        v      DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (oid, period, cat, k)
      );
      CREATE INDEX usage_counters_by_period ON usage_counters (period);
      -- Periods whose billing_record events are stored (written in the same transaction as the events).
      CREATE TABLE usage_periods (
        period BIGINT PRIMARY KEY,
        closed BIGINT NOT NULL
      );
      -- The last period emitted per schedule frequency ("30m" ... "168h").
      CREATE TABLE schedule_marks (
        frequency ${ID} PRIMARY KEY,
        period    BIGINT NOT NULL
      );

      -- Ingestion sources the cloud runs for an organization. mapping and settings are JSON text; cursor
      -- is where a poller resumes after a restart.
      CREATE TABLE cloud_adapters (
        oid            ${ID} NOT NULL,
        name           ${ID} NOT NULL,
        type           TEXT NOT NULL,
        platform       TEXT NOT NULL,
        hostname       TEXT NOT NULL,
        mapping        TEXT NOT NULL,
        settings       TEXT NOT NULL,
        grace_period   DOUBLE PRECISION,
        enabled        BOOLEAN NOT NULL,
        disabled_at    BIGINT,
        disabled_error TEXT,
        cursor         TEXT,
        created        BIGINT NOT NULL,
        updated        BIGINT NOT NULL,
        PRIMARY KEY (oid, name)
      );

      -- The append-only event log. seq is the log position: allocated from event_log_head under an
      -- advisory lock held until commit, so positions are strictly increasing in commit order (see
      -- event-log.ts). stream is NULL for sensor telemetry (the "event" stream) and names the platform
      -- stream otherwise. json is TEXT, not JSONB: reads return the envelope exactly as stored.
      -- No primary key and no foreign keys: the group commit must never fail on a lookup, seq is unique
      -- by construction, and duplicates are prevented upstream by sequence_marks.
      --
      -- Partitioned by event_time, one partition per UTC month from 2000 to 2100 (created on demand,
      -- partitions.ts) plus two catch-alls for clocks outside that span. A time-ranged read prunes to
      -- the months it covers; retention drops whole months (DETACH PARTITION ... CONCURRENTLY, then
      -- DROP TABLE): no mass DELETE, no vacuum debt. Indexes, each created on every partition:
      --   events_timeline        one sensor's events by time, ties in append order (queryTimeline);
      --   events_timeline_type   the same for one event type;
      --   events_stream_time     an org's platform stream by time (queryStream), platform events only;
      --   events_log_telemetry   an org's telemetry by log position (readLog/countLog of "event");
      --   events_log_stream      an org's platform stream by log position (readLog/countLog).
      CREATE TABLE events (
        seq        BIGINT NOT NULL,
        oid        ${ID} NOT NULL,
        sid        ${ID},
        event_type ${ID} NOT NULL,
        event_time BIGINT NOT NULL,
        event_id   TEXT NOT NULL,
        stream     ${ID},
        json       TEXT NOT NULL
      ) PARTITION BY RANGE (event_time);
      CREATE INDEX events_timeline ON events (oid, sid, event_time, seq) WHERE sid IS NOT NULL;
      CREATE INDEX events_timeline_type ON events (oid, sid, event_type, event_time, seq) WHERE sid IS NOT NULL;
      CREATE INDEX events_stream_time ON events (oid, stream, event_time, seq) WHERE stream IS NOT NULL;
      CREATE INDEX events_log_telemetry ON events (oid, seq) WHERE stream IS NULL;
      CREATE INDEX events_log_stream ON events (oid, stream, seq) WHERE stream IS NOT NULL;
      CREATE TABLE events_before_2000 PARTITION OF events FOR VALUES FROM (MINVALUE) TO (${MONTHLY_FROM});
      CREATE TABLE events_from_2100 PARTITION OF events FOR VALUES FROM (${MONTHLY_UNTIL}) TO (MAXVALUE);

      -- The last log position handed out (one row). Updated under the event-log lock in the appending
      -- transaction, so it is also the highest committed position: lastLogSeq() and a new output's cursor.
      CREATE TABLE event_log_head (
        id  SMALLINT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL
      );
      INSERT INTO event_log_head (id, seq) VALUES (1, 0);
    `,
  },
  {
    version: 2,
    name: 'cluster mode',
    sql: `
      -- Nodes of a cluster (cluster-tables.ts): heartbeats in the database's clock, so nodes' clocks never matter.
      CREATE TABLE cluster_nodes (
        node_id   ${ID} PRIMARY KEY,
        url       TEXT NOT NULL,
        started   BIGINT NOT NULL,
        heartbeat BIGINT NOT NULL
      );

      -- One row per live sensor session in the cluster: online status and quota across nodes.
      CREATE TABLE cluster_sessions (
        sid          ${ID} PRIMARY KEY,
        oid          ${ID} NOT NULL,
        node_id      ${ID} NOT NULL,
        session_id   ${ID} NOT NULL,
        connected_at BIGINT NOT NULL,
        ext_ip       TEXT NOT NULL,
        hostname     TEXT NOT NULL,
        fingerprint  TEXT NOT NULL
      );
      CREATE INDEX cluster_sessions_by_org ON cluster_sessions (oid);
      CREATE INDEX cluster_sessions_by_node ON cluster_sessions (node_id);

      -- How far the leader's relay has published the event log to the bus (one row). NULL until a cluster
      -- first runs: it then starts at the end of the log (what a single node stored before is not replayed).
      CREATE TABLE bus_relay (
        id    SMALLINT PRIMARY KEY CHECK (id = 1),
        seq   BIGINT,
        epoch TEXT NOT NULL
      );
      INSERT INTO bus_relay (id, seq, epoch) VALUES (1, NULL, gen_random_uuid()::text);

      -- The relay reads the whole log in position order.
      CREATE INDEX events_by_seq ON events (seq);
    `,
  },
];

const TRACKING_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    applied BIGINT NOT NULL
  )`;

function checkOrder(migrations: readonly Migration[]): void {
  let last = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= last) {
      throw new Error(`migration versions must be increasing integers > 0: ${m.version} follows ${last}`);
    }
    last = m.version;
  }
}

async function appliedVersions(client: pg.PoolClient): Promise<Set<number>> {
  const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
  return new Set(rows.map((r) => r.version));
}

/** The highest applied version (0 for a new schema). */
export async function schemaVersion(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ v: number | null }>(
    "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 ELSE (SELECT COALESCE(MAX(version), 0) FROM schema_migrations) END AS v",
  );
  return rows[0]?.v ?? 0;
}

function assertNotNewer(versions: Set<number>, latest: number): void {
  const current = Math.max(0, ...versions);
  if (current > latest) {
    throw new SchemaTooNewError(
      `database schema version ${current} is newer than this Picket knows (up to ${latest}); ` +
        'upgrade Picket or restore a backup of the database',
    );
  }
}

/**
 * Applies the pending migrations; returns the versions applied by this call (empty when already up to
 * date). Fails without changing anything when the schema has a version this code does not know.
 */
export async function migrate(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS, now: () => number = Date.now): Promise<number[]> {
  checkOrder(migrations);
  const latest = migrations.at(-1)?.version ?? 0;
  const applied: number[] = [];
  for (const m of migrations) {
    const didApply = await withTransaction(pool, async (client) => {
      await lockXact(client, LOCK.migrations);
      // Under the lock: another node may have migrated meanwhile, or may be newer than this one.
      await client.query(TRACKING_TABLE);
      const versions = await appliedVersions(client);
      assertNotNewer(versions, latest);
      if (versions.has(m.version)) return false;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)', [m.version, m.name, now()]);
      return true;
    });
    if (didApply) applied.push(m.version);
  }
  if (migrations.length === 0) {
    await withTransaction(pool, async (client) => {
      await lockXact(client, LOCK.migrations);
      await client.query(TRACKING_TABLE);
      assertNotNewer(await appliedVersions(client), latest);
    });
  }
  return applied;
}
