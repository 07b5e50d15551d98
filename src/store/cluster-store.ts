// What the cluster mode keeps in the shared store (PostgreSQL): the nodes and their heartbeats, every live
// sensor session of the cluster (online status and quota across nodes), the relay's position on the event
// log, and the log itself read in position order. Only the PostgreSQL store implements it.
import type { StreamName } from '../bus/event-bus.js';

/** A live session as the cluster knows it. */
export interface ClusterSessionRow {
  sid: string;
  oid: string;
  node_id: string;
  /** Unique per session: a node removes only the row of its own session, never a newer one. */
  session_id: string;
  connected_at: number;
  ext_ip: string;
  hostname: string;
  fingerprint: string;
}

/** What the admission decision sees, read under the organization's lock. */
export interface ClusterAdmissionFacts {
  /** The session this sid holds anywhere in the cluster, if any. */
  live: ClusterSessionRow | undefined;
  onlineInOrg: number;
  /** The organization's quota as of now; null = unlimited. */
  quota: number | null;
}

/** An event of the log with its stream, as the relay publishes it. */
export interface RelayRow {
  seq: number;
  oid: string;
  sid: string | null;
  event_type: string;
  /** null: sensor telemetry (the "event" stream). */
  stream: StreamName | null;
  json: string;
}

/** A cluster node as recorded in the shared store. */
export interface ClusterNodeRow {
  node_id: string;
  /** The node's API URL (other nodes forward to it). */
  url: string;
  started: number;
  /** Last heartbeat, Unix ms by the database's clock. */
  heartbeat: number;
  /** Time since the last heartbeat, ms, by the database's clock at the read. */
  age_ms: number;
}

/**
 * Named leases held by one node over its own database connection (session advisory locks): at most one
 * node holds a name at a time, and a node that dies (its connection closes) drops every lease at once.
 */
export interface LeaseSession {
  /** Takes the lease if nobody holds it; true when this session holds it (also when it already did). */
  tryAcquire(name: string): Promise<boolean>;
  release(name: string): Promise<void>;
  /** Checks the connection (a lost one rejects, and `lost` resolves). */
  ping(): Promise<void>;
  /** Resolves with the reason once the connection is lost: every lease is gone with it. */
  readonly lost: Promise<Error>;
  close(): Promise<void>;
}

export interface ClusterStore {
  /** Opens a session of its own for leases (a dedicated connection). */
  openLeases(): Promise<LeaseSession>;
  listNodes(): Promise<ClusterNodeRow[]>;
  /** Records the node (or refreshes it) with a heartbeat now. */
  registerNode(nodeId: string, url: string): Promise<void>;
  /** Refreshes the node's heartbeat; false when the node's row is gone (it was declared dead). */
  heartbeat(nodeId: string): Promise<boolean>;
  /** Nodes whose heartbeat is older than `timeoutMs` by the database's clock. */
  deadNodes(timeoutMs: number): Promise<string[]>;
  /** Removes a node and its sessions in one transaction; returns the sessions it held. */
  removeNode(nodeId: string): Promise<ClusterSessionRow[]>;

  /**
   * Admission of one session, atomically across the cluster: locks the organization's row, reads the
   * facts, lets `decide` rule, and records `session` when it admits (replacing the sid's previous row).
   * Returns the decision and the session it replaced, if any.
   */
  admitSession<V>(session: ClusterSessionRow, decide: (facts: ClusterAdmissionFacts) => { admit: boolean; verdict: V }): Promise<{ verdict: V; replaced: ClusterSessionRow | undefined }>;
  /** Removes the session's row if it is still this session's. */
  releaseSession(sid: string, sessionId: string): Promise<void>;
  listSessions(): Promise<ClusterSessionRow[]>;
  getSession(sid: string): Promise<ClusterSessionRow | undefined>;

  /**
   * The relay's position (seq null before a cluster first ran) and the store's epoch, a random id drawn
   * once per store that makes the relay's message ids unique to this store.
   */
  relayPosition(): Promise<{ seq: number | null; epoch: string }>;
  setRelayPosition(seq: number): Promise<void>;
  /** The whole log after `afterSeq`, in position order. */
  readLogSince(afterSeq: number, limit: number): Promise<RelayRow[]>;
}
