// Chooses the store backend from configuration. The embedded SQLite file is the default; a postgres://
// URL (PICKET_STORE / --store) puts state and events in PostgreSQL, shared by every node of a cluster.
import path from 'node:path';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../observability/logger.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

export function openStore(config: ServerConfig, logger?: Logger): Store {
  // Alone on the database, or one of the nodes of a cluster (PostgresStoreOptions.nodeMode).
  if (config.store !== undefined) return PostgresStore.open({ ...postgresOptions(config.store), nodeMode: config.bus !== undefined ? 'cluster' : 'single' });
  if (config.bus !== undefined) throw new Error('the cluster mode (PICKET_BUS / --bus) needs a PostgreSQL store (PICKET_STORE / --store postgres://…): every node shares it');
  return SqliteStore.open({ path: path.join(config.dataDir, 'picket.db'), synchronous: config.sqliteSync, appendThread: config.sqliteAppendThread, ...(logger ? { logger } : {}) });
}

/**
 * Splits Picket's own URL parameters off a postgres:// URL: `schema` (tables in that schema, created if
 * missing) and `pool_size` (connections per node). The rest of the URL goes to node-pg as it is.
 */
export function postgresOptions(raw: string): { url: string; schema?: string; poolSize?: number } {
  const url = new URL(raw);
  const schema = url.searchParams.get('schema') ?? undefined;
  const pool = url.searchParams.get('pool_size');
  url.searchParams.delete('schema');
  url.searchParams.delete('pool_size');
  const poolSize = pool === null ? undefined : Number(pool);
  if (poolSize !== undefined && (!Number.isInteger(poolSize) || poolSize < 1)) throw new Error(`pool_size in PICKET_STORE must be a positive integer, got "${pool}"`);
  return { url: url.toString(), ...(schema !== undefined ? { schema } : {}), ...(poolSize !== undefined ? { poolSize } : {}) };
}
