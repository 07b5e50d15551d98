// Outputs, their cursors over the event log, reads of the log in seq order, and organizations' component
// errors, on SQLite. Used by SqliteStore; kept apart so the store file stays about sensors and events.
import type Database from 'better-sqlite3';
import type { OutputConfig, OutputStream } from '../../domain/outputs.js';
import type { LogQuery, LogRow, OrgError } from '../store.js';
import { guarded } from './connection.js';

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

function toOutput(r: OutputRow): OutputConfig {
  return {
    oid: r.oid, name: r.name, module: r.module, stream: r.stream as OutputStream,
    filters: JSON.parse(r.filters) as OutputConfig['filters'], shape: JSON.parse(r.shape) as OutputConfig['shape'],
    fields: JSON.parse(r.fields) as OutputConfig['fields'], created: r.created, updated: r.updated,
  };
}

/** Telemetry has stream NULL in the events table; platform streams are named. */
function streamClause(stream: OutputStream): string {
  return stream === 'event' ? 'stream IS NULL' : 'stream = ?';
}

/** Moves an output's cursor forward, never back (parameters: seq, oid, name, seq). */
export const SET_OUTPUT_CURSOR = 'UPDATE output_cursors SET seq = ? WHERE oid = ? AND name = ? AND seq < ?';

export class OutputTables {
  private readonly readStatements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  listOutputs(oid: string | undefined): OutputConfig[] {
    const rows = oid === undefined
      ? this.db.prepare('SELECT * FROM outputs ORDER BY oid, name').all()
      : this.db.prepare('SELECT * FROM outputs WHERE oid = ? ORDER BY name').all(oid);
    return (rows as OutputRow[]).map(toOutput);
  }

  getOutput(oid: string, name: string): OutputConfig | null {
    const row = this.db.prepare('SELECT * FROM outputs WHERE oid = ? AND name = ?').get(oid, name) as OutputRow | undefined;
    return row ? toOutput(row) : null;
  }

  putOutput(c: OutputConfig): { created: boolean } {
    return guarded(() =>
      this.db.transaction(() => {
        const existing = this.db.prepare('SELECT created FROM outputs WHERE oid = ? AND name = ?').get(c.oid, c.name) as { created: number } | undefined;
        this.db
          .prepare(
            'INSERT INTO outputs (oid, name, module, stream, filters, shape, fields, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)' +
              ' ON CONFLICT (oid, name) DO UPDATE SET module = excluded.module, stream = excluded.stream, filters = excluded.filters,' +
              ' shape = excluded.shape, fields = excluded.fields, updated = excluded.updated',
          )
          .run(c.oid, c.name, c.module, c.stream, JSON.stringify(c.filters), JSON.stringify(c.shape), JSON.stringify(c.fields), existing?.created ?? c.created, c.updated);
        if (existing) return { created: false };
        // A new output starts at the end of the log: it delivers what is stored from now on.
        const last = this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM events').get() as { seq: number };
        this.db.prepare('INSERT OR REPLACE INTO output_cursors (oid, name, seq) VALUES (?, ?, ?)').run(c.oid, c.name, last.seq);
        return { created: true };
      }).immediate(),
    );
  }

  deleteOutput(oid: string, name: string): boolean {
    return guarded(() =>
      this.db.transaction(() => {
        const gone = this.db.prepare('DELETE FROM outputs WHERE oid = ? AND name = ?').run(oid, name).changes > 0;
        this.db.prepare('DELETE FROM output_cursors WHERE oid = ? AND name = ?').run(oid, name);
        this.db.prepare('DELETE FROM org_errors WHERE oid = ? AND component = ?').run(oid, `outputs/${name}`);
        return gone;
      }).immediate(),
    );
  }

  getOutputCursor(oid: string, name: string): number | null {
    const row = this.db.prepare('SELECT seq FROM output_cursors WHERE oid = ? AND name = ?').get(oid, name) as { seq: number } | undefined;
    return row ? row.seq : null;
  }

  setOutputCursor(oid: string, name: string, seq: number): void {
    guarded(() => this.db.prepare(SET_OUTPUT_CURSOR).run(seq, oid, name, seq));
  }

  readLog(q: LogQuery): LogRow[] {
    const sql = `SELECT seq, oid, sid, event_type, json FROM events WHERE oid = ? AND ${streamClause(q.stream)} AND seq > ? ORDER BY seq LIMIT ?`;
    const params = q.stream === 'event' ? [q.oid, q.afterSeq, q.limit] : [q.oid, q.stream, q.afterSeq, q.limit];
    // Every output reads here after every commit: the statement is prepared once.
    let statement = this.readStatements.get(sql);
    if (!statement) this.readStatements.set(sql, (statement = this.db.prepare(sql)));
    return statement.all(...params) as LogRow[];
  }

  countLog(q: Omit<LogQuery, 'limit'> & { upToSeq: number }): number {
    const sql = `SELECT count(*) AS n FROM events WHERE oid = ? AND ${streamClause(q.stream)} AND seq > ? AND seq <= ?`;
    const params = q.stream === 'event' ? [q.oid, q.afterSeq, q.upToSeq] : [q.oid, q.stream, q.afterSeq, q.upToSeq];
    return (this.db.prepare(sql).get(...params) as { n: number }).n;
  }

  lastLogSeq(): number {
    return (this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM events').get() as { seq: number }).seq;
  }

  recordOrgError(e: OrgError): void {
    guarded(() =>
      this.db
        .prepare('INSERT INTO org_errors (oid, component, error, at) VALUES (?, ?, ?, ?) ON CONFLICT (oid, component) DO UPDATE SET error = excluded.error, at = excluded.at')
        .run(e.oid, e.component, e.error.slice(0, 2000), e.at),
    );
  }

  clearOrgError(oid: string, component: string): void {
    guarded(() => this.db.prepare('DELETE FROM org_errors WHERE oid = ? AND component = ?').run(oid, component));
  }

  listOrgErrors(oid: string): OrgError[] {
    return this.db.prepare('SELECT oid, component, error, at FROM org_errors WHERE oid = ? ORDER BY component').all(oid) as OrgError[];
  }
}
