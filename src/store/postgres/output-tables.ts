// Outputs, their cursors over the event log, reads of the log in seq order, and organizations' component
// errors, on PostgreSQL. Used by PostgresStore.
//
// The log is read by position: an output keeps the last position it delivered, and readLog returns the
// organization's events of one stream after it, through events_log_telemetry (oid, seq) for telemetry or
// events_log_stream (oid, stream, seq) for a platform stream; the events table is partitioned by time, so
// this is an ordered merge of one index range per monthly partition. Positions are commit-ordered
// (event-log.ts), so a cursor never passes an event that is yet to become visible.
import type pg from 'pg';
import type { OutputConfig, OutputStream } from '../../domain/outputs.js';
import type { LogQuery, LogRow, OrgError } from '../store.js';
import { run, withTransaction } from './connection.js';

interface OutputRow {
  oid: string;
  name: string;
  module: string;
  stream: string;
  filters: string;
  shape: string;
  fields: string;
  created: number;
  updated: number;
}

const OUTPUT_COLUMNS = 'oid, name, module, stream, filters, shape, fields, created, updated';

function toOutput(r: OutputRow): OutputConfig {
  return {
    oid: r.oid, name: r.name, module: r.module, stream: r.stream as OutputStream,
    filters: JSON.parse(r.filters) as OutputConfig['filters'], shape: JSON.parse(r.shape) as OutputConfig['shape'],
    fields: JSON.parse(r.fields) as OutputConfig['fields'], created: r.created, updated: r.updated,
  };
}

/** The WHERE clause and parameters selecting one organization's stream ($1 = oid, $2 = stream when named). */
function streamFilter(oid: string, stream: OutputStream): { where: string; values: unknown[] } {
  // Telemetry has stream NULL in the events table; platform streams are named.
  return stream === 'event' ? { where: 'oid = $1 AND stream IS NULL', values: [oid] } : { where: 'oid = $1 AND stream = $2', values: [oid, stream] };
}

/** At most this many attempts of putOutput's update-or-insert against concurrent creates and deletes. */
const PUT_ATTEMPTS = 5;

export class OutputTables {
  constructor(private readonly pool: pg.Pool) {}

  async listOutputs(oid: string | undefined): Promise<OutputConfig[]> {
    const { rows } = oid === undefined
      ? await run<OutputRow>(this.pool, `SELECT ${OUTPUT_COLUMNS} FROM outputs ORDER BY oid, name`)
      : await run<OutputRow>(this.pool, `SELECT ${OUTPUT_COLUMNS} FROM outputs WHERE oid = $1 ORDER BY name`, [oid]);
    return rows.map(toOutput);
  }

  async getOutput(oid: string, name: string): Promise<OutputConfig | null> {
    const { rows } = await run<OutputRow>(this.pool, `SELECT ${OUTPUT_COLUMNS} FROM outputs WHERE oid = $1 AND name = $2`, [oid, name]);
    return rows[0] ? toOutput(rows[0]) : null;
  }

  /**
   * Replaces the output if it exists (keeping its creation time and cursor), else inserts it with a cursor
   * at the end of the log, in one transaction. An insert that loses a race with another node's insert
   * (ON CONFLICT DO NOTHING) goes round again and updates the winner's row.
   */
  async putOutput(c: OutputConfig): Promise<{ created: boolean }> {
    const doc = [c.module, c.stream, JSON.stringify(c.filters), JSON.stringify(c.shape), JSON.stringify(c.fields), c.updated];
    return withTransaction(this.pool, async (client) => {
      for (let attempt = 0; attempt < PUT_ATTEMPTS; attempt++) {
        const updated = await run(
          client,
          'UPDATE outputs SET module = $3, stream = $4, filters = $5, shape = $6, fields = $7, updated = $8 WHERE oid = $1 AND name = $2',
          [c.oid, c.name, ...doc],
        );
        if ((updated.rowCount ?? 0) > 0) return { created: false };
        const inserted = await run(
          client,
          `INSERT INTO outputs (${OUTPUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8) ON CONFLICT (oid, name) DO NOTHING`,
          [c.oid, c.name, ...doc, c.created],
        );
        if ((inserted.rowCount ?? 0) === 0) continue;
        // A new output starts at the end of the log: it delivers what is stored from now on.
        await run(
          client,
          'INSERT INTO output_cursors (oid, name, seq) SELECT $1, $2, seq FROM event_log_head WHERE id = 1' +
            ' ON CONFLICT (oid, name) DO UPDATE SET seq = excluded.seq',
          [c.oid, c.name],
        );
        return { created: true };
      }
      throw new Error(`output ${c.oid}/${c.name} is being created and deleted concurrently; try again`);
    });
  }

  /** Removes the output, its cursor and its last error in one statement. */
  async deleteOutput(oid: string, name: string): Promise<boolean> {
    const { rowCount } = await run(
      this.pool,
      'WITH c AS (DELETE FROM output_cursors WHERE oid = $1 AND name = $2), e AS (DELETE FROM org_errors WHERE oid = $1 AND component = $3)' +
        ' DELETE FROM outputs WHERE oid = $1 AND name = $2',
      [oid, name, `outputs/${name}`],
    );
    return (rowCount ?? 0) > 0;
  }

  async getOutputCursor(oid: string, name: string): Promise<number | null> {
    const { rows } = await run<{ seq: number }>(this.pool, 'SELECT seq FROM output_cursors WHERE oid = $1 AND name = $2', [oid, name]);
    return rows[0]?.seq ?? null;
  }

  async setOutputCursor(oid: string, name: string, seq: number): Promise<void> {
    // Forward only, atomically: a late write from a slower node never moves the cursor back.
    await run(this.pool, 'UPDATE output_cursors SET seq = $3 WHERE oid = $1 AND name = $2 AND seq < $3', [oid, name, seq]);
  }

  async readLog(q: LogQuery): Promise<LogRow[]> {
    const { where, values } = streamFilter(q.oid, q.stream);
    const n = values.length;
    const { rows } = await run<LogRow>(
      this.pool,
      `SELECT seq, oid, sid, event_type, json FROM events WHERE ${where} AND seq > $${n + 1} ORDER BY seq LIMIT $${n + 2}`,
      [...values, q.afterSeq, q.limit],
    );
    return rows;
  }

  async countLog(q: Omit<LogQuery, 'limit'> & { upToSeq: number }): Promise<number> {
    const { where, values } = streamFilter(q.oid, q.stream);
    const n = values.length;
    const { rows } = await run<{ n: number }>(
      this.pool,
      `SELECT COUNT(*) AS n FROM events WHERE ${where} AND seq > $${n + 1} AND seq <= $${n + 2}`,
      [...values, q.afterSeq, q.upToSeq],
    );
    return rows[0]?.n ?? 0;
  }

  /** The last position handed out and committed (event-log.ts): the counter, not a scan of the log. */
  async lastLogSeq(): Promise<number> {
    const { rows } = await run<{ seq: number }>(this.pool, 'SELECT seq FROM event_log_head WHERE id = 1');
    return rows[0]?.seq ?? 0;
  }

  async recordOrgError(e: OrgError): Promise<void> {
    await run(
      this.pool,
      'INSERT INTO org_errors (oid, component, error, at) VALUES ($1, $2, $3, $4) ON CONFLICT (oid, component) DO UPDATE SET error = excluded.error, at = excluded.at',
      [e.oid, e.component, e.error.slice(0, 2000), e.at],
    );
  }

  async clearOrgError(oid: string, component: string): Promise<void> {
    await run(this.pool, 'DELETE FROM org_errors WHERE oid = $1 AND component = $2', [oid, component]);
  }

  async listOrgErrors(oid: string): Promise<OrgError[]> {
    return (await run<OrgError>(this.pool, 'SELECT oid, component, error, at FROM org_errors WHERE oid = $1 ORDER BY component', [oid])).rows;
  }
}
