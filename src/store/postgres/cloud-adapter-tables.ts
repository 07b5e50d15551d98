// Cloud adapters of organizations and the poller cursors that let them resume after a restart, on
// PostgreSQL. Used by PostgresStore. disable() is one conditional UPDATE (WHERE enabled), so of several
// nodes disabling the same adapter at once exactly one gets true and emits cloud_adapter_disabled.
import type pg from 'pg';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import { run } from './connection.js';

interface CloudAdapterRow {
  oid: string;
  name: string;
  type: string;
  platform: string;
  hostname: string;
  mapping: string;
  settings: string;
  grace_period: number | null;
  enabled: boolean;
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
    grace_period: r.grace_period, enabled: r.enabled, disabled_at: r.disabled_at, disabled_error: r.disabled_error, created: r.created, updated: r.updated,
  };
}

/** At most this many attempts of put()'s update-or-insert against concurrent creates and deletes. */
const PUT_ATTEMPTS = 5;

export class CloudAdapterTables {
  constructor(private readonly pool: pg.Pool) {}

  async list(oid: string | undefined): Promise<CloudAdapterConfig[]> {
    const { rows } = oid === undefined
      ? await run<CloudAdapterRow>(this.pool, `SELECT ${COLUMNS} FROM cloud_adapters ORDER BY oid, name`)
      : await run<CloudAdapterRow>(this.pool, `SELECT ${COLUMNS} FROM cloud_adapters WHERE oid = $1 ORDER BY name`, [oid]);
    return rows.map(toConfig);
  }

  async get(oid: string, name: string): Promise<CloudAdapterConfig | null> {
    const { rows } = await run<CloudAdapterRow>(this.pool, `SELECT ${COLUMNS} FROM cloud_adapters WHERE oid = $1 AND name = $2`, [oid, name]);
    return rows[0] ? toConfig(rows[0]) : null;
  }

  /**
   * Replaces the adapter if it exists (keeping its creation time, and its cursor unless the type changed:
   * a cursor belongs to the source it was read from), else inserts it. Each statement is atomic; an insert
   * that loses a race with another node's (ON CONFLICT DO NOTHING) goes round again and updates that row.
   */
  async put(c: CloudAdapterConfig): Promise<{ created: boolean }> {
    const doc = [
      c.type, c.platform, c.hostname, JSON.stringify(c.mapping), JSON.stringify(c.settings), c.grace_period, c.enabled, c.disabled_at, c.disabled_error, c.updated,
    ];
    for (let attempt = 0; attempt < PUT_ATTEMPTS; attempt++) {
      // In SET, `type` and `cursor` are the row's values before this update.
      const updated = await run(
        this.pool,
        'UPDATE cloud_adapters SET cursor = CASE WHEN type = $3 THEN cursor END, type = $3, platform = $4, hostname = $5, mapping = $6, settings = $7,' +
          ' grace_period = $8, enabled = $9, disabled_at = $10, disabled_error = $11, updated = $12 WHERE oid = $1 AND name = $2',
        [c.oid, c.name, ...doc],
      );
      if ((updated.rowCount ?? 0) > 0) return { created: false };
      const inserted = await run(
        this.pool,
        `INSERT INTO cloud_adapters (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $12) ON CONFLICT (oid, name) DO NOTHING`,
        [c.oid, c.name, ...doc, c.created],
      );
      if ((inserted.rowCount ?? 0) > 0) return { created: true };
    }
    throw new Error(`cloud adapter ${c.oid}/${c.name} is being created and deleted concurrently; try again`);
  }

  /** Removes the adapter (and with it its cursor) and its component error, in one statement. */
  async delete(oid: string, name: string): Promise<boolean> {
    const { rowCount } = await run(
      this.pool,
      'WITH e AS (DELETE FROM org_errors WHERE oid = $1 AND component = $3) DELETE FROM cloud_adapters WHERE oid = $1 AND name = $2',
      [oid, name, `cloud_adapters/${name}`],
    );
    return (rowCount ?? 0) > 0;
  }

  async disable(oid: string, name: string, at: number, error: string): Promise<boolean> {
    const { rowCount } = await run(
      this.pool,
      'UPDATE cloud_adapters SET enabled = false, disabled_at = $3, disabled_error = $4 WHERE oid = $1 AND name = $2 AND enabled',
      [oid, name, at, error.slice(0, 2000)],
    );
    return (rowCount ?? 0) > 0;
  }

  async enable(oid: string, name: string, at: number): Promise<boolean> {
    const { rowCount } = await run(
      this.pool,
      'UPDATE cloud_adapters SET enabled = true, disabled_at = NULL, disabled_error = NULL, updated = $3 WHERE oid = $1 AND name = $2',
      [oid, name, at],
    );
    return (rowCount ?? 0) > 0;
  }

  async getCursor(oid: string, name: string): Promise<string | null> {
    const { rows } = await run<{ cursor: string | null }>(this.pool, 'SELECT cursor FROM cloud_adapters WHERE oid = $1 AND name = $2', [oid, name]);
    return rows[0]?.cursor ?? null;
  }

  async setCursor(oid: string, name: string, cursor: string | null): Promise<void> {
    await run(this.pool, 'UPDATE cloud_adapters SET cursor = $3 WHERE oid = $1 AND name = $2', [oid, name, cursor]);
  }
}
