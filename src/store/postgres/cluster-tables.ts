// The cluster mode's tables on PostgreSQL (ClusterStore, ../cluster-store.ts): cluster_nodes with
// heartbeats in the database's clock, cluster_sessions (one row per live sensor session anywhere in the
// cluster), bus_relay (the relay's position), and the whole event log read in position order.
//
// Admission takes the organization's row lock (SELECT … FOR UPDATE on orgs) for the length of one short
// transaction: two hellos of one organization on two nodes are decided one after the other, each seeing
// the other's session row, so a quota is never exceeded and a clone never slips in beside a live session.
import type pg from 'pg';
import type { ClusterAdmissionFacts, ClusterNodeRow, ClusterSessionRow, ClusterStore, LeaseSession, RelayRow } from '../cluster-store.js';
import { StoreNotFoundError } from '../errors.js';
import { run, withTransaction } from './connection.js';

const SESSION_COLUMNS = 'sid, oid, node_id, session_id, connected_at, ext_ip, hostname, fingerprint';
/** Unix ms by the database's clock. */
const DB_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

export class ClusterTables implements ClusterStore {
  constructor(private readonly pool: pg.Pool) {}

  async openLeases(): Promise<LeaseSession> {
    return PostgresLeases.open(this.pool);
  }

  async listNodes(): Promise<ClusterNodeRow[]> {
    const { rows } = await run<ClusterNodeRow>(this.pool, `SELECT node_id, url, started, heartbeat, ${DB_NOW} - heartbeat AS age_ms FROM cluster_nodes ORDER BY node_id`);
    return rows;
  }

  async registerNode(nodeId: string, url: string): Promise<void> {
    await run(
      this.pool,
      `INSERT INTO cluster_nodes (node_id, url, started, heartbeat) VALUES ($1, $2, ${DB_NOW}, ${DB_NOW})` +
        ` ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, heartbeat = excluded.heartbeat`,
      [nodeId, url],
    );
  }

  async heartbeat(nodeId: string): Promise<boolean> {
    const { rowCount } = await run(this.pool, `UPDATE cluster_nodes SET heartbeat = ${DB_NOW} WHERE node_id = $1`, [nodeId]);
    return (rowCount ?? 0) > 0;
  }

  async deadNodes(timeoutMs: number): Promise<string[]> {
    const { rows } = await run<{ node_id: string }>(
      this.pool,
      `SELECT node_id FROM cluster_nodes WHERE heartbeat < ${DB_NOW} - $1 ORDER BY node_id`,
      [Math.round(timeoutMs)],
    );
    // Sessions left by a node whose row is already gone (removed while it was admitting) count as dead too.
    const orphans = await run<{ node_id: string }>(
      this.pool,
      'SELECT DISTINCT s.node_id FROM cluster_sessions s LEFT JOIN cluster_nodes n ON n.node_id = s.node_id WHERE n.node_id IS NULL',
    );
    return [...new Set([...rows.map((r) => r.node_id), ...orphans.rows.map((r) => r.node_id)])];
  }

  async removeNode(nodeId: string): Promise<ClusterSessionRow[]> {
    return withTransaction(this.pool, async (client) => {
      await run(client, 'DELETE FROM cluster_nodes WHERE node_id = $1', [nodeId]);
      const { rows } = await run<ClusterSessionRow>(client, `DELETE FROM cluster_sessions WHERE node_id = $1 RETURNING ${SESSION_COLUMNS}`, [nodeId]);
      return rows;
    });
  }

  async admitSession<V>(
    session: ClusterSessionRow,
    decide: (facts: ClusterAdmissionFacts) => { admit: boolean; verdict: V },
  ): Promise<{ verdict: V; replaced: ClusterSessionRow | undefined }> {
    return withTransaction(this.pool, async (client) => {
      const org = await run<{ quota: number | null }>(client, 'SELECT quota FROM orgs WHERE oid = $1 FOR UPDATE', [session.oid]);
      if (org.rows.length === 0) throw new StoreNotFoundError(`organization ${session.oid} does not exist`);
      // FOR UPDATE: a dead node's removal (removeNode) and this replacement of its row never both claim it.
      const live = await run<ClusterSessionRow>(client, `SELECT ${SESSION_COLUMNS} FROM cluster_sessions WHERE sid = $1 FOR UPDATE`, [session.sid]);
      const count = await run<{ n: number }>(client, 'SELECT COUNT(*) AS n FROM cluster_sessions WHERE oid = $1', [session.oid]);
      const facts: ClusterAdmissionFacts = { live: live.rows[0], onlineInOrg: count.rows[0]?.n ?? 0, quota: org.rows[0]!.quota };
      const { admit, verdict } = decide(facts);
      if (admit) {
        await run(
          client,
          `INSERT INTO cluster_sessions (${SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)` +
            ' ON CONFLICT (sid) DO UPDATE SET oid = excluded.oid, node_id = excluded.node_id, session_id = excluded.session_id,' +
            ' connected_at = excluded.connected_at, ext_ip = excluded.ext_ip, hostname = excluded.hostname, fingerprint = excluded.fingerprint',
          [session.sid, session.oid, session.node_id, session.session_id, session.connected_at, session.ext_ip, session.hostname, session.fingerprint],
        );
      }
      return { verdict, replaced: admit ? facts.live : undefined };
    });
  }

  async releaseSession(sid: string, sessionId: string): Promise<void> {
    await run(this.pool, 'DELETE FROM cluster_sessions WHERE sid = $1 AND session_id = $2', [sid, sessionId]);
  }

  async listSessions(): Promise<ClusterSessionRow[]> {
    const { rows } = await run<ClusterSessionRow>(this.pool, `SELECT ${SESSION_COLUMNS} FROM cluster_sessions`);
    return rows;
  }

  async getSession(sid: string): Promise<ClusterSessionRow | undefined> {
    const { rows } = await run<ClusterSessionRow>(this.pool, `SELECT ${SESSION_COLUMNS} FROM cluster_sessions WHERE sid = $1`, [sid]);
    return rows[0];
  }

  async relayPosition(): Promise<{ seq: number | null; epoch: string }> {
    const { rows } = await run<{ seq: number | null; epoch: string }>(this.pool, 'SELECT seq, epoch FROM bus_relay WHERE id = 1');
    if (!rows[0]) throw new Error('bus_relay is missing its row: the schema is damaged');
    return rows[0];
  }

  async setRelayPosition(seq: number): Promise<void> {
    // Forward only: a deposed leader's late write never moves the position back.
    await run(this.pool, 'UPDATE bus_relay SET seq = $1 WHERE id = 1 AND (seq IS NULL OR seq < $1)', [seq]);
  }

  async readLogSince(afterSeq: number, limit: number): Promise<RelayRow[]> {
    const { rows } = await run<RelayRow>(
      this.pool,
      'SELECT seq, oid, sid, event_type, stream, json FROM events WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return rows;
  }
}

/**
 * Leases as session-level advisory locks on one dedicated connection, keyed by a 64-bit hash of the schema
 * and the lease's name. PostgreSQL drops them all when the connection ends, which is how a dead node's
 * leases are freed for the others (at once when its process dies: the kernel closes its socket).
 */
const LEASE_KEY = "hashtextextended(COALESCE(current_schema(), '') || '/' || $1, 0)";

class PostgresLeases implements LeaseSession {
  private readonly held = new Set<string>();
  private failed: Error | undefined;
  private resolveLost!: (err: Error) => void;
  readonly lost: Promise<Error>;

  private constructor(private readonly client: pg.PoolClient) {
    this.lost = new Promise((r) => (this.resolveLost = r));
    const onGone = (err: Error): void => {
      if (this.failed) return;
      this.failed = err;
      this.held.clear();
      this.resolveLost(err);
    };
    client.on('error', onGone);
    client.on('end', () => onGone(new Error('the lease connection ended')));
  }

  static async open(pool: pg.Pool): Promise<PostgresLeases> {
    const client = await pool.connect();
    return new PostgresLeases(client);
  }

  async tryAcquire(name: string): Promise<boolean> {
    if (this.failed) throw this.failed;
    if (this.held.has(name)) return true;
    const { rows } = await run<{ ok: boolean }>(this.client, `SELECT pg_try_advisory_lock(${LEASE_KEY}) AS ok`, [name]);
    if (rows[0]?.ok) this.held.add(name);
    return rows[0]?.ok === true;
  }

  async release(name: string): Promise<void> {
    if (!this.held.delete(name) || this.failed) return;
    await run(this.client, `SELECT pg_advisory_unlock(${LEASE_KEY})`, [name]);
  }

  async ping(): Promise<void> {
    if (this.failed) throw this.failed;
    await run(this.client, 'SELECT 1');
  }

  async close(): Promise<void> {
    this.held.clear();
    if (this.failed) return;
    // Unlocked first (the server frees a closed socket's locks only once it notices), then destroyed
    // rather than returned to the pool: the session ends with it.
    await run(this.client, 'SELECT pg_advisory_unlock_all()').catch(() => undefined);
    this.failed = new Error('closed');
    this.client.release(true);
  }
}
