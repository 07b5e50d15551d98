// Connecting to PostgreSQL with the settings the store relies on, running transactions, the advisory locks
// that serialise work across cluster nodes, and turning PostgreSQL's constraint errors into the
// backend-neutral store errors.
//
// - One pg.Pool per store, from a postgres:// URL. An optional schema isolates one installation (or one
//   test) inside a shared database: every connection of the pool starts with `-c search_path=<schema>`,
//   so the SQL of the store never qualifies a table name, and ensureSchema() creates the schema if missing.
// - Type parsing is per pool, never global (pg.types.setTypeParser would change every other pg user in
//   the process): int8 (BIGINT: Unix ms, log positions, counts) is parsed into a JS number. Every value
//   the store keeps in a BIGINT is far below 2^53 (ms until the year 285,000; log positions), so no
//   precision is lost; SUM(), which is numeric, is cast back to BIGINT in the SQL.
// - Advisory locks are taken with the two-key form (a constant for the purpose, hashtext() of the schema
//   name): stores in different schemas of one database never wait for each other (a hash collision only
//   makes two schemas share a lock: slower, never wrong).
// - unique_violation (23505) → StoreConflictError, foreign_key_violation (23503) → StoreNotFoundError.
import pg from 'pg';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import { StoreConflictError, StoreNotFoundError } from '../errors.js';

const INT8_OID = 20;

export interface PostgresConnectionOptions {
  /** postgres://user:password@host:port/database (any libpq-style URL node-pg accepts). */
  url: string;
  /**
   * Schema holding the tables (created if missing). Lowercase letters, digits and underscores. Omitted:
   * the server's default search_path (normally "public").
   */
  schema?: string;
  /** Connections kept by the pool (default 10). */
  poolSize?: number;
  /** How long to wait for a new connection before failing (default 10 s). */
  connectTimeoutMs?: number;
  /** Shown in pg_stat_activity (default "picket"). */
  applicationName?: string;
  /** Called with errors of idle connections (the server restarted, the network dropped). Default: ignored. */
  onIdleError?: (err: Error) => void;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name "${schema}": use lowercase letters, digits and underscores (at most 63, not starting with a digit)`);
  }
  return schema;
}

/** int8 as a JS number (see the header); every other type as node-pg parses it by default. */
const storeTypes: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) => (oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)),
};

function parseInt8(value: string): number {
  return Number(value);
}

export function createPool(opts: PostgresConnectionOptions): pg.Pool {
  const schema = opts.schema !== undefined ? checkSchemaName(opts.schema) : undefined;
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: opts.applicationName ?? 'picket',
    types: storeTypes,
    ...(schema !== undefined ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener Node would
  // crash the process. The pool drops that client; the next query opens a new connection.
  pool.on('error', (err) => opts.onIdleError?.(err));
  return pool;
}

/** The URL without its password, for logs and Store.description. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable URL)';
  }
}

/** Anything that runs a query: the pool or one client (inside a transaction). */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/** Runs one statement, rethrowing PostgreSQL errors as store errors where one applies. */
export async function run<R extends QueryResultRow = QueryResultRow>(db: Queryable, text: string, values?: unknown[]): Promise<QueryResult<R>> {
  try {
    return await db.query<R>(text, values);
  } catch (err) {
    throw translateError(err);
  }
}

/** Maps uniqueness and foreign-key violations to StoreConflictError / StoreNotFoundError. */
export function translateError(err: unknown): unknown {
  if (!(err instanceof pg.DatabaseError)) return err;
  switch (err.code) {
    case '23505':
      return new StoreConflictError(`already exists (${err.message})`, { cause: err });
    case '23503':
      return new StoreNotFoundError('the referenced organization or sensor does not exist', { cause: err });
    default:
      return err;
  }
}

/**
 * Runs `fn` in one READ COMMITTED transaction on one client of the pool: COMMIT when it resolves,
 * ROLLBACK when it throws (the error is rethrown, translated). A client whose ROLLBACK fails is
 * destroyed rather than returned to the pool in an unknown state.
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    throw translateError(err);
  } finally {
    client.release(broken);
  }
}

/**
 * Advisory lock purposes (first key of pg_advisory_xact_lock(int, int); the second is a hash of the
 * schema). Transaction-scoped: released by COMMIT or ROLLBACK, never leaked by a crashed node.
 */
export const LOCK = {
  /** Applying migrations. */
  migrations: 0x5049_4b01,
  /** Appending to the event log: makes log positions commit-ordered (see event-log.ts). */
  eventLog: 0x5049_4b02,
  /** Creating event partitions (see partitions.ts). */
  partitions: 0x5049_4b03,
  /** Creating the schema itself (keyed by the schema name, which need not exist yet). */
  schema: 0x5049_4b04,
  /** The one node running on a schema (session-scoped, held while the node runs; see postgres-store.ts). */
  node: 0x5049_4b05,
  /** Creating the first organization of an empty store (several nodes starting at once). */
  bootstrap: 0x5049_4b06,
  /** The cluster's leader (session-scoped, held by one node while it leads; see src/cluster/leadership.ts). */
  leader: 0x5049_4b07,
} as const;

/**
 * Takes a transaction-scoped advisory lock for `purpose` in the current schema, waiting for it. The
 * COALESCE matters: with a search_path naming no existing schema current_schema() is NULL, and the
 * lock function would return NULL without locking anything.
 */
export async function lockXact(client: Queryable, purpose: number): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))", [purpose]);
}

/**
 * Creates the schema if missing; concurrent callers (several nodes starting at once) are serialised.
 * An existing schema is left alone without asking for CREATE on the database, so a role that was only
 * given a schema made by an administrator can run the store.
 */
export async function ensureSchema(pool: pg.Pool, schema: string): Promise<void> {
  checkSchemaName(schema);
  const exists = async (db: Queryable) => ((await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount ?? 0) > 0;
  if (await exists(pool)) return;
  await withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK.schema, schema]);
    if (!(await exists(client))) await client.query(`CREATE SCHEMA "${schema}"`);
  });
}
