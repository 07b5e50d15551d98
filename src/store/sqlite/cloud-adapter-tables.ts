// Cloud adapters of organizations and the poller cursors that let them resume after a restart, on
// SQLite. Used by SqliteStore; kept apart so the store file stays about sensors and events.
import type Database from 'better-sqlite3';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import { guarded } from './connection.js';

interface CloudAdapterRow {
  oid: string;
  name: string;
  type: string;
  platform: string;
  hostname: string;
  mapping: string;
  settings: string;
  grace_period: number | null;
  enabled: number;
  disabled_at: number | null;
  disabled_error: string | null;
  created: number;
  updated: number;
}

const COLUMNS = 'oid, name, type, platform, hostname, mapping, settings, grace_period, enabled, disabled_at, disabled_error, created, updated';

function toConfig(r: CloudAdapterRow): CloudAdapterConfig {
  return {
    oid: r.oid, name: r.name, type: r.type as CloudAdapterConfig['type'], platform: r.platform as CloudAdapterConfig['platform'], hostname: r.hostname,
    mapping: JSON.parse(r.mapping) as CloudAdapterConfig['mapping'], settings: JSON.parse(r.settings) as Record<string, unknown>,
    grace_period: r.grace_period, enabled: r.enabled === 1, disabled_at: r.disabled_at, disabled_error: r.disabled_error, created: r.created, updated: r.updated,
  };
}

export class CloudAdapterTables {
  constructor(private readonly db: Database.Database) {}

  list(oid: string | undefined): CloudAdapterConfig[] {
    const rows = oid === undefined
      ? this.db.prepare(`SELECT ${COLUMNS} FROM cloud_adapters ORDER BY oid, name`).all()
      : this.db.prepare(`SELECT ${COLUMNS} FROM cloud_adapters WHERE oid = ? ORDER BY name`).all(oid);
    return (rows as CloudAdapterRow[]).map(toConfig);
  }

  get(oid: string, name: string): CloudAdapterConfig | null {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM cloud_adapters WHERE oid = ? AND name = ?`).get(oid, name) as CloudAdapterRow | undefined;
    return row ? toConfig(row) : null;
  }

  put(c: CloudAdapterConfig): { created: boolean } {
    return guarded(() =>
      this.db.transaction(() => {
        const existing = this.db.prepare('SELECT created, type FROM cloud_adapters WHERE oid = ? AND name = ?').get(c.oid, c.name) as { created: number; type: string } | undefined;
        this.db
          .prepare(
            `INSERT INTO cloud_adapters (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)` +
              ' ON CONFLICT (oid, name) DO UPDATE SET type = excluded.type, platform = excluded.platform, hostname = excluded.hostname,' +
              ' mapping = excluded.mapping, settings = excluded.settings, grace_period = excluded.grace_period, enabled = excluded.enabled,' +
              ' disabled_at = excluded.disabled_at, disabled_error = excluded.disabled_error, updated = excluded.updated',
          )
          .run(
            c.oid, c.name, c.type, c.platform, c.hostname, JSON.stringify(c.mapping), JSON.stringify(c.settings), c.grace_period,
            c.enabled ? 1 : 0, c.disabled_at, c.disabled_error, existing?.created ?? c.created, c.updated,
          );
        // A cursor belongs to the source it was read from: another type starts over.
        if (existing && existing.type !== c.type) this.db.prepare('UPDATE cloud_adapters SET cursor = NULL WHERE oid = ? AND name = ?').run(c.oid, c.name);
        return { created: !existing };
      }).immediate(),
    );
  }

  delete(oid: string, name: string): boolean {
    return guarded(() =>
      this.db.transaction(() => {
        const gone = this.db.prepare('DELETE FROM cloud_adapters WHERE oid = ? AND name = ?').run(oid, name).changes > 0;
        this.db.prepare('DELETE FROM org_errors WHERE oid = ? AND component = ?').run(oid, `cloud_adapters/${name}`);
        return gone;
      }).immediate(),
    );
  }

  disable(oid: string, name: string, at: number, error: string): boolean {
    return guarded(
      () =>
        this.db
          .prepare('UPDATE cloud_adapters SET enabled = 0, disabled_at = ?, disabled_error = ? WHERE oid = ? AND name = ? AND enabled = 1')
          .run(at, error.slice(0, 2000), oid, name).changes > 0,
    );
  }

  enable(oid: string, name: string, at: number): boolean {
    return guarded(
      () => this.db.prepare('UPDATE cloud_adapters SET enabled = 1, disabled_at = NULL, disabled_error = NULL, updated = ? WHERE oid = ? AND name = ?').run(at, oid, name).changes > 0,
    );
  }

  getCursor(oid: string, name: string): string | null {
    const row = this.db.prepare('SELECT cursor FROM cloud_adapters WHERE oid = ? AND name = ?').get(oid, name) as { cursor: string | null } | undefined;
    return row?.cursor ?? null;
  }

  setCursor(oid: string, name: string, cursor: string | null): void {
    guarded(() => this.db.prepare('UPDATE cloud_adapters SET cursor = ? WHERE oid = ? AND name = ?').run(cursor, oid, name));
  }
}
