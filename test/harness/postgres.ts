// The PostgreSQL of this machine, for tests that run Picket on it: is it reachable, and a fresh schema per
// test (dropped afterwards), so tests never see each other's rows. Without PostgreSQL the tests that need it
// skip with a message, except under CI=true, where a missing PostgreSQL is a failure, not a skip.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';

export const POSTGRES_URL = process.env.PICKET_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const problem = await probe();

/** true when the PostgreSQL tests should run: reachable, or CI=true (where they must run, and fail if it is not). */
export const postgresAvailable = problem === null || process.env.CI === 'true';

if (problem !== null) {
  const what = `PostgreSQL not reachable at ${POSTGRES_URL} (${problem})`;
  if (process.env.CI === 'true') console.error(`${what}: CI=true, so the PostgreSQL tests run and fail`);
  else console.warn(`${what}: skipping the PostgreSQL tests (set PICKET_TEST_POSTGRES_URL, or start PostgreSQL)`);
}

/** A new schema name for one test: `picket_<prefix>_<random>`. */
export function freshSchemaName(prefix: string): string {
  return `picket_${prefix}_${randomBytes(6).toString('hex')}`;
}

/** The schema of a test server's data directory (PICKET_TEST_STORE=postgres): a restart on the same directory finds its data. */
export function schemaForDataDir(dataDir: string): string {
  return `picket_h_${runId()}_${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`;
}

/** This test run's id (PICKET_TEST_RUN, set by vitest.config.ts): its schemas are dropped when the run ends. */
export function runId(): string {
  const id = process.env.PICKET_TEST_RUN ?? 'local';
  if (!/^[a-z0-9]{1,16}$/.test(id)) throw new Error(`PICKET_TEST_RUN must be lowercase letters and digits, got "${id}"`);
  return id;
}

/** Drops every schema of one test run (the servers' schemas under PICKET_TEST_STORE=postgres). */
export async function dropRunSchemas(run: string): Promise<number> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", [`picket\\_h\\_${run}\\_%`]);
    for (const { nspname } of rows) await client.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
    return rows.length;
  } finally {
    await client.end();
  }
}

/** The store URL of a Picket node using `schema` in the test database. */
export function storeUrl(schema: string): string {
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return url.toString();
}

/** Drops a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
