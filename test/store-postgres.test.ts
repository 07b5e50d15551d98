// The PostgreSQL store: the shared Store contract against a real server, then what only PostgreSQL has —
// concurrent-safe versioned migrations, commit-ordered log positions with several writers, the query
// plan of the timeline read, and data across close and reopen.
//
// Each store gets a fresh schema (picket_test_<random hex>) in the database at PICKET_TEST_POSTGRES_URL
// (default postgres://postgres@127.0.0.1:5432/test), dropped with CASCADE afterwards. When PostgreSQL is
// unreachable the suite is skipped with a warning, except on CI (CI=true), where it runs and fails.
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, LOCK } from '../src/store/postgres/connection.js';
import { waitFor } from './harness/wait.js';
import { MIGRATIONS, migrate, SchemaTooNewError, schemaVersion, type Migration } from '../src/store/postgres/migrations.js';
import { monthOf } from '../src/store/postgres/partitions.js';
import { PostgresStore, StoreInUseError } from '../src/store/postgres/postgres-store.js';
import { streamQuery, timelineQuery } from '../src/store/postgres/timeline.js';
import type { StoredEvent } from '../src/store/store.js';
import { runStoreContract } from './contract/store-contract.js';
import { POSTGRES_URL, postgresAvailable } from './harness/postgres.js';

const URL = POSTGRES_URL;
const suite = postgresAvailable ? describe : describe.skip;

/** Connections for test bookkeeping (creating and dropping schemas, EXPLAIN, raw checks). */
let adminPool: pg.Pool | undefined;
function admin(): pg.Pool {
  adminPool ??= createPool({ url: URL, poolSize: 2 });
  return adminPool;
}

const schemas = new Set<string>();

function newSchema(): string {
  const schema = `picket_test_${randomBytes(6).toString('hex')}`;
  schemas.add(schema);
  return schema;
}

async function dropSchema(schema: string): Promise<void> {
  await admin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  schemas.delete(schema);
}

function openStore(schema: string, poolSize = 4): PostgresStore {
  return PostgresStore.open({ url: URL, schema, poolSize });
}

afterAll(async () => {
  if (!adminPool) return;
  for (const schema of [...schemas]) await dropSchema(schema).catch(() => {});
  await adminPool.end();
});

function ev(oid: string, sid: string | null, event_time: number, extra: Partial<StoredEvent> = {}): StoredEvent {
  const event_id = randomUUID();
  const event_type = extra.event_type ?? 'NEW_PROCESS';
  return { oid, sid, event_type, event_time, event_id, json: JSON.stringify({ routing: { oid, sid, event_type, event_time, event_id }, event: {} }), ...extra };
}

suite('PostgresStore', () => {
  runStoreContract('postgres', async () => {
    const schema = newSchema();
    const store = openStore(schema);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await dropSchema(schema);
      },
    };
  });

  describe('PostgreSQL specifics', () => {
    it('a single-node store refuses a second node on the same schema until the first closes', async () => {
      const schema = newSchema();
      const first = PostgresStore.open({ url: URL, schema, poolSize: 2, nodeMode: 'single' });
      await first.migrate();
      const second = PostgresStore.open({ url: URL, schema, poolSize: 2, nodeMode: 'single' });
      await expect(second.migrate()).rejects.toThrow(StoreInUseError);
      await expect(second.migrate()).rejects.toThrow(/another Picket node is running/);
      // Another schema of the same database is another installation: not blocked.
      const elsewhere = PostgresStore.open({ url: URL, schema: newSchema(), poolSize: 2, nodeMode: 'single' });
      await elsewhere.migrate();
      await elsewhere.close();
      await first.close();
      await second.migrate();
      // Killing the connection that holds the lock (a PostgreSQL restart, a network cut) makes the store not ready.
      await second.ping();
      // Only this schema's lock (key 2 is hashtext(schema), stored as its unsigned 32-bit pattern): other tests hold theirs.
      const { rows } = await admin().query<{ pid: number }>(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid::bigint = (hashtext($2)::bigint & 4294967295) AND granted",
        [LOCK.node, schema],
      );
      expect(rows).toHaveLength(1);
      for (const { pid } of rows) await admin().query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor(async () => second.ping().then(() => false, (err: Error) => /lost the connection holding the node lock/.test(err.message)), { message: 'ping to report the lost lock' });
      await second.close();
    });

    /** A store on a fresh schema, closed and dropped by the returned cleanup. */
    async function fresh(): Promise<{ store: PostgresStore; schema: string; pool: pg.Pool; done: () => Promise<void> }> {
      const schema = newSchema();
      const store = openStore(schema);
      await store.migrate();
      const pool = createPool({ url: URL, schema, poolSize: 2 });
      return {
        store, schema, pool,
        done: async () => {
          await store.close();
          await pool.end();
          await dropSchema(schema);
        },
      };
    }

    it('keeps its data across close and reopen, and describes itself without the password', async () => {
      const schema = newSchema();
      const first = openStore(schema);
      expect(first.description).toContain(schema);
      expect(PostgresStore.open({ url: 'postgres://u:secret@db.example:5432/picket', schema }).description).not.toContain('secret');
      await first.migrate();
      await first.createOrg({ oid: 'o1', name: 'one', quota: 3, created: 1 });
      await first.appendEvents([{ oid: 'o1', sid: 's1', event_type: 'T', event_time: 1_717_000_000_000, event_id: 'e1', json: '{"x":1}' }], [{ sid: 's1', stream_id: 'A', seq: 4 }]);
      await first.close();
      await expect(first.ping()).rejects.toThrow();

      const second = openStore(schema);
      try {
        await second.migrate();
        expect(await second.getOrg('o1')).toEqual({ oid: 'o1', name: 'one', quota: 3, created: 1 });
        expect((await second.queryTimeline({ oid: 'o1', sid: 's1', start: 0, end: Number.MAX_SAFE_INTEGER, limit: 5 })).events).toEqual(['{"x":1}']);
        expect(await second.getSequenceMark('s1')).toEqual({ sid: 's1', stream_id: 'A', seq: 4 });
        expect(await second.lastLogSeq()).toBe(1);
      } finally {
        await second.close();
        await dropSchema(schema);
      }
    });

    it('returns BIGINT times as numbers beyond 2^31, on this pool only', async () => {
      const { store, done } = await fresh();
      try {
        await store.createOrg({ oid: 'o', name: 'n', quota: 5_000_000_000, created: 4_102_444_800_123 });
        expect(await store.getOrg('o')).toEqual({ oid: 'o', name: 'n', quota: 5_000_000_000, created: 4_102_444_800_123 });
        // The parser is per pool: pg's global parsers still return int8 as strings for everyone else.
        const other = new pg.Client({ connectionString: URL });
        await other.connect();
        try {
          expect((await other.query('SELECT 5000000000::bigint AS n')).rows[0].n).toBe('5000000000');
        } finally {
          await other.end();
        }
      } finally {
        await done();
      }
    });

    it('stores events of any time: monthly partitions on demand, catch-alls outside 2000..2100', async () => {
      const { store, pool, done } = await fresh();
      try {
        const times = [0, 946_684_799_999, Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(2024, 2, 1), Date.UTC(2099, 11, 31), 4_102_444_800_000, 8_000_000_000_000_000];
        const events = times.map((t) => ev('o', 's', t));
        await store.appendEvents(events, []);
        const page = await store.queryTimeline({ oid: 'o', sid: 's', start: -1, end: Number.POSITIVE_INFINITY, limit: 100 });
        expect(page.events).toEqual(events.map((e) => e.json));
        const { rows } = await pool.query<{ name: string }>(
          "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass ORDER BY 1",
        );
        const names = rows.map((r) => r.name);
        expect(names).toEqual(expect.arrayContaining(['events_before_2000', 'events_from_2100', 'events_y2024m02', 'events_y2024m03', 'events_y2099m12']));
        expect(monthOf(Date.UTC(2024, 1, 29, 23, 59, 59, 999))).toEqual({ name: 'events_y2024m02', from: Date.UTC(2024, 1, 1), until: Date.UTC(2024, 2, 1) });
        expect(monthOf(0)).toBeNull();
      } finally {
        await done();
      }
    });

    it('re-creates a month dropped by retention when a late event of it arrives', async () => {
      const { store, pool, done } = await fresh();
      try {
        const t = Date.UTC(2023, 0, 15);
        await store.appendEvents([ev('o', 's', t)], []);
        await pool.query('ALTER TABLE events DETACH PARTITION events_y2023m01');
        await pool.query('DROP TABLE events_y2023m01');
        const late = ev('o', 's', t + 1);
        await store.appendEvents([late], [{ sid: 's', stream_id: 'x', seq: 1 }]);
        expect((await store.queryTimeline({ oid: 'o', sid: 's', start: 0, end: Number.MAX_SAFE_INTEGER, limit: 10 })).events).toEqual([late.json]);
      } finally {
        await done();
      }
    });

    describe('migrations', () => {
      it('are versioned and applied once: migrating again and reopening are no-ops', async () => {
        const { store, schema, pool, done } = await fresh();
        try {
          await store.migrate();
          const again = openStore(schema);
          await again.migrate();
          await again.close();
          const { rows } = await pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
          expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
          expect(await schemaVersion(pool)).toBe(MIGRATIONS.at(-1)!.version);
          expect(await migrate(pool)).toEqual([]);
          const tables = await pool.query<{ name: string }>(
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE 'events\\_%' ORDER BY 1",
          );
          expect(tables.rows.map((r) => r.name)).toEqual([
            'api_keys', 'artifact_exports', 'artifact_parts', 'artifacts', 'bus_relay', 'cloud_adapters', 'cluster_nodes', 'cluster_sessions', 'event_log_head', 'events', 'ingestion_keys', 'installation_keys',
            'org_errors', 'orgs', 'output_cursors', 'outputs', 'schedule_marks', 'schema_migrations', 'sensor_notices', 'sensor_tags', 'sensors',
            'sequence_marks', 'tasks', 'usage_counters', 'usage_periods',
          ]);
        } finally {
          await done();
        }
      });

      it('apply each version exactly once when several nodes migrate the same schema at once', async () => {
        const schema = newSchema();
        const pools = Array.from({ length: 4 }, () => createPool({ url: URL, schema, poolSize: 2 }));
        try {
          await admin().query(`CREATE SCHEMA "${schema}"`);
          const extra: Migration[] = [
            { version: MIGRATIONS.at(-1)!.version + 1, name: 'widgets', sql: 'CREATE TABLE widgets (id INTEGER PRIMARY KEY)' },
            { version: MIGRATIONS.at(-1)!.version + 2, name: 'one widget', sql: 'INSERT INTO widgets VALUES (1)' },
          ];
          const all = [...MIGRATIONS, ...extra];
          const applied = await Promise.all(pools.map((pool) => migrate(pool, all)));
          expect(applied.flat().sort((a, b) => a - b)).toEqual(all.map((m) => m.version));
          const pool = pools[0]!;
          const { rows } = await pool.query<{ version: number; n: number }>('SELECT version, COUNT(*) OVER (PARTITION BY version) AS n FROM schema_migrations ORDER BY version');
          expect(rows.map((r) => r.version)).toEqual(all.map((m) => m.version));
          expect(rows.every((r) => r.n === 1)).toBe(true);
          expect((await pool.query('SELECT * FROM widgets')).rowCount).toBe(1);
          // And stores opening at once on a schema that does not exist yet.
          const schema2 = newSchema();
          const stores = Array.from({ length: 3 }, () => openStore(schema2, 2));
          await Promise.all(stores.map((s) => s.migrate()));
          await Promise.all(stores.map((s) => s.close()));
          expect((await admin().query(`SELECT version FROM "${schema2}".schema_migrations`)).rows.map((r: { version: number }) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
          await dropSchema(schema2);
        } finally {
          await Promise.all(pools.map((p) => p.end()));
          await dropSchema(schema);
        }
      });

      it('roll a failing migration back completely', async () => {
        const { pool, done } = await fresh();
        try {
          const broken: Migration = { version: 1000, name: 'broken', sql: 'CREATE TABLE half (id INTEGER); INSERT INTO no_such_table VALUES (1);' };
          await expect(migrate(pool, [...MIGRATIONS, broken])).rejects.toThrow(/no_such_table/);
          expect(await schemaVersion(pool)).toBe(MIGRATIONS.at(-1)!.version);
          expect((await pool.query("SELECT to_regclass('half') AS t")).rows[0].t).toBeNull();
        } finally {
          await done();
        }
      });

      it('refuse a schema migrated by a newer version, changing nothing', async () => {
        const { schema, pool, done } = await fresh();
        try {
          await pool.query('INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)', [9999, 'from the future', 1]);
          const newer = openStore(schema);
          await expect(newer.migrate()).rejects.toBeInstanceOf(SchemaTooNewError);
          await expect(newer.migrate()).rejects.toThrow(new RegExp(`schema version 9999 is newer than this Picket knows \\(up to ${MIGRATIONS.at(-1)!.version}\\)`));
          await newer.close();
          const pending: Migration = { version: 9998, name: 'pending', sql: 'CREATE TABLE should_not_exist (id INTEGER)' };
          await expect(migrate(pool, [...MIGRATIONS, pending])).rejects.toBeInstanceOf(SchemaTooNewError);
          expect((await pool.query("SELECT to_regclass('should_not_exist') AS t")).rows[0].t).toBeNull();
        } finally {
          await done();
        }
      });

      it('reject a migration list out of order', async () => {
        const { pool, done } = await fresh();
        try {
          await expect(migrate(pool, [{ version: 2, name: 'b', sql: '' }, { version: 1, name: 'a', sql: '' }])).rejects.toThrow(/increasing/);
        } finally {
          await done();
        }
      });
    });

    it('hands out log positions in commit order to concurrent writers on several nodes: a log reader never misses one', async () => {
      const { store, schema, done } = await fresh();
      const nodes = [store, openStore(schema, 3), openStore(schema, 3)];
      try {
        const oid = randomUUID();
        const base = Date.UTC(2024, 4, 1);
        const total = { n: 0 };
        let writing = true;
        const writer = async (node: PostgresStore, w: number): Promise<void> => {
          for (let b = 0; b < 25; b++) {
            const size = 1 + ((b * 7 + w) % 30);
            await node.appendEvents(Array.from({ length: size }, (_, i) => ev(oid, `s${w}`, base + b * 100 + i)), []);
            total.n += size;
          }
        };
        // The reader behaves like an output: read after its cursor, move the cursor to the last row read.
        const seen: number[] = [];
        const reader = async (): Promise<void> => {
          let after = 0;
          for (;;) {
            const stillWriting = writing;
            const rows = await store.readLog({ oid, stream: 'event', afterSeq: after, limit: 37 });
            for (const r of rows) seen.push(r.seq);
            if (rows.length > 0) after = rows.at(-1)!.seq;
            else if (!stillWriting) return;
          }
        };
        const reading = reader();
        await Promise.all(nodes.flatMap((node, i) => [writer(node, i * 2), writer(node, i * 2 + 1)]));
        writing = false;
        await reading;
        expect(seen.length).toBe(total.n);
        expect(new Set(seen).size).toBe(total.n);
        expect(seen.every((s, i) => i === 0 || s > seen[i - 1]!)).toBe(true);
        expect(await store.lastLogSeq()).toBe(seen.at(-1));
        expect(await store.countLog({ oid, stream: 'event', afterSeq: 0, upToSeq: seen.at(-1)! })).toBe(total.n);
      } finally {
        await Promise.all(nodes.slice(1).map((n) => n.close()));
        await done();
      }
    });

    it('lets exactly one node win each claim, disable, close and take', async () => {
      const { store, schema, done } = await fresh();
      const nodes = [store, openStore(schema, 3), openStore(schema, 3)];
      try {
        const once = async (f: (s: PostgresStore) => Promise<unknown>) => (await Promise.all(nodes.flatMap((n) => [f(n), f(n)]))).filter((r) => r === true || (Array.isArray(r) && r.length > 0));
        expect(await once((s) => s.claimSensorNotice('sid', 'clone', 10, 100))).toHaveLength(1);
        expect(await once((s) => s.claimSchedulePeriod('1h', 3_600_000))).toHaveLength(1);
        const oid = randomUUID();
        await store.addUsage([{ oid, period: 0, cat: 'c', k: 'k', v: 1, mode: 'add' }]);
        expect(await once((s) => s.closeUsagePeriod(0, [ev(oid, null, 1, { stream: 'billing' })], 2))).toHaveLength(1);
        expect((await store.queryStream({ oid, stream: 'billing', start: 0, end: 10, limit: 10 })).events).toHaveLength(1);
        await store.putCloudAdapter({
          oid, name: 'a', type: 'webhook', platform: 'json', hostname: 'h', mapping: {}, settings: {}, grace_period: null,
          enabled: true, disabled_at: null, disabled_error: null, created: 1, updated: 1,
        });
        expect(await once((s) => s.disableCloudAdapter(oid, 'a', 5, 'boom'))).toHaveLength(1);
        await store.createOrg({ oid, name: 'n', quota: null, created: 1 });
        for (let i = 0; i < 10; i++) {
          await store.createArtifact({ log_id: `l${i}`, oid, payload_id: `p${i}`, log_type: 't', source: 's', original_path: '/', size: 1, sha256: 'a', md5: 'b', created: 1, expires: 2 });
        }
        const taken = (await Promise.all(nodes.map((n) => n.takeExpiredArtifacts(5, 4)))).flat().map((a) => a.log_id);
        expect(new Set(taken).size).toBe(taken.length);
        expect(taken.length).toBe(10);
      } finally {
        await Promise.all(nodes.slice(1).map((n) => n.close()));
        await done();
      }
    });

    describe('query plans', () => {
      /** Every node of an EXPLAIN (FORMAT JSON) plan. */
      function nodesOf(plan: unknown): Array<Record<string, unknown>> {
        const out: Array<Record<string, unknown>> = [];
        const walk = (n: Record<string, unknown>): void => {
          out.push(n);
          for (const child of (n.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
        };
        walk((plan as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
        return out;
      }

      const shapes = [false, true].flatMap((eventType) => [true, false].flatMap((forward) => [false, true].map((cursor) => ({ eventType, forward, cursor }))));

      describe('of the timeline read', () => {
        // Three months of 4 sensors, 7 event types: a page is a small part of the range, as in a real database.
        const base = Date.UTC(2024, 2, 20);
        const day = 86_400_000;
        let ctx: Awaited<ReturnType<typeof fresh>> | undefined;
        beforeAll(async () => {
          ctx = await fresh();
          const events = Array.from({ length: 20_000 }, (_, i) => ev('o', `s${i % 4}`, base + Math.floor(i / 4) * (day / 60), { event_type: `T${i % 7}` }));
          await ctx.store.appendEvents(events, []);
          await ctx.pool.query('ANALYZE events');
        });
        afterAll(async () => ctx?.done());

        it.each(shapes)('is an index range scan of the months in range, with no sort: %o', async (shape) => {
          const pool = ctx!.pool;
          const q = timelineQuery(
            { oid: 'o', sid: 's1', start: base, end: base + 40 * day, limit: 100, forward: shape.forward, ...(shape.eventType ? { eventType: 'T1' } : {}) },
            // The cursor leaves 30 days of the range to read, either way.
            shape.cursor ? { time: base + (shape.forward ? 10 : 30) * day, seq: 900, forward: shape.forward } : null,
            101,
          );
          const { rows } = await pool.query(`EXPLAIN (FORMAT JSON) ${q.text}`, q.values);
          const nodes = nodesOf(rows[0]['QUERY PLAN']);
          const types = nodes.map((n) => n['Node Type']);
          expect(types).not.toContain('Seq Scan');
          expect(types).not.toContain('Sort');
          expect(types).not.toContain('Bitmap Heap Scan');
          const scans = nodes.filter((n) => n['Node Type'] === 'Index Scan');
          expect(scans.length).toBeGreaterThan(0);
          for (const s of scans) expect(s['Index Name']).toMatch(shape.eventType ? /oid_sid_event_type_event_time_seq/ : /oid_sid_event_time_seq/);
          // Pruned to the months in range (March, April): May and June are never touched.
          expect(scans.every((s) => /^events_y2024m0[34]$/.test(String(s['Relation Name'])))).toBe(true);
          // And it returns what the store returns.
          const page = await pool.query(q.text, q.values);
          expect(page.rowCount).toBe(101);
        });
      });

      it('the platform stream read is an index range scan of the stream index, which telemetry never enters', async () => {
        const { store, pool, done } = await fresh();
        try {
          const base = Date.UTC(2024, 4, 1);
          const events = Array.from({ length: 4000 }, (_, i) =>
            ev('o', `s${i % 20}`, base + i * 1000, i % 10 === 0 ? { event_type: 'enrollment', stream: 'deployment' } : {}),
          );
          await store.appendEvents(events, []);
          await pool.query('ANALYZE events');
          for (const forward of [true, false]) {
            const q = streamQuery({ oid: 'o', stream: 'deployment', start: base, end: base + 10_000_000, limit: 100, forward }, null, 101);
            const { rows } = await pool.query(`EXPLAIN (FORMAT JSON) ${q.text}`, q.values);
            const nodes = nodesOf(rows[0]['QUERY PLAN']);
            expect(nodes.map((n) => n['Node Type'])).not.toContain('Seq Scan');
            expect(nodes.map((n) => n['Node Type'])).not.toContain('Sort');
            expect(nodes.some((n) => /oid_stream_event_time_seq/.test(String(n['Index Name'])))).toBe(true);
          }
          const indexed = await pool.query("SELECT COUNT(*) AS n FROM events WHERE stream IS NOT NULL");
          expect(indexed.rows[0].n).toBe(400);
        } finally {
          await done();
        }
      });
    });
  });
});
