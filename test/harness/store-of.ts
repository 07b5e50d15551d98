// Opens the store a test server process used (after it stopped), to check what it stored: the SQLite file in
// its data directory, or its PostgreSQL schema under PICKET_TEST_STORE=postgres.
import path from 'node:path';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';

export async function openStoreOf(dataDir: string): Promise<Store> {
  if (process.env.PICKET_TEST_STORE === 'postgres') {
    const { POSTGRES_URL, schemaForDataDir } = await import('./postgres.js');
    return PostgresStore.open({ url: POSTGRES_URL, schema: schemaForDataDir(dataDir), poolSize: 2 });
  }
  return SqliteStore.open({ path: path.join(dataDir, 'picket.db'), synchronous: 'normal' });
}
