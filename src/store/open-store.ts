// Chooses the store backend from configuration. The embedded SQLite file is the default.
import path from 'node:path';
import type { ServerConfig } from '../config.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

export function openStore(config: ServerConfig): Store {
  return SqliteStore.open({ path: path.join(config.dataDir, 'picket.db'), synchronous: config.sqliteSync });
}
