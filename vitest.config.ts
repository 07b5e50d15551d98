import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { defineConfig } from 'vitest/config';

// Every test runs on the embedded store ("embedded" project). The tests that start servers run a second
// time with PICKET_TEST_STORE=postgres ("postgres" project: each test server in its own schema of the
// local PostgreSQL, see test/harness/postgres.ts), so both backends show the same behaviour end to end.
// Without a reachable PostgreSQL that project is left out with a warning, except under CI=true.
const POSTGRES_URL = process.env.PICKET_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch (err) {
    console.warn(`PostgreSQL not reachable at ${POSTGRES_URL} (${(err as Error).message}): the end-to-end tests run on the embedded store only`);
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Server-level tests worth a second run on PostgreSQL (lifecycle.test.ts covers both backends itself). */
const ON_POSTGRES = [
  'adapter-e2e', 'api', 'artifacts-recovery', 'artifacts-sensor', 'artifacts', 'billing', 'cloud-adapters',
  'deployment-sensors', 'deployment', 'durability-fleet', 'durability', 'flow-control', 'gateway-protocol',
  'live-stream', 'outputs-bulk', 'outputs-delivery', 'outputs-syslog', 'outputs', 'schedule-events', 'sensor-session',
  'sync', 'tasking-delivery', 'tasking', 'usp',
].map((name) => `test/${name}.test.ts`);

const withPostgres = process.env.CI === 'true' || (await postgresReachable());
/** Names this run's schemas (picket_h_<run>_...), so its global teardown drops exactly them. */
// Kept in this process's environment: vitest may evaluate this file more than once, and the postgres
// project's global teardown (run here) must see the id the test workers got.
process.env.PICKET_TEST_RUN ??= randomBytes(4).toString('hex');
const RUN = process.env.PICKET_TEST_RUN;

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers and sensor processes; keep the 2-core machine from thrashing.
    maxWorkers: 2,
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: 'embedded', include: ['test/**/*.test.ts'] } },
      ...(withPostgres ? [{ extends: true as const, test: { name: 'postgres', include: ON_POSTGRES, env: { PICKET_TEST_STORE: 'postgres', PICKET_TEST_RUN: RUN }, globalSetup: ['test/harness/postgres-teardown.ts'] } }] : []),
    ],
  },
});
