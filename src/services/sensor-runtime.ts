// Runtime metrics of each connected sensor for *_per_sensor ticks (runtime_mtd.mtd): bytes and events
// received in its current connection. Fed once per stored batch from the sensor session, so the hot path
// costs one map lookup and two additions per batch; reset when the sensor's connection changes.
import type { SensorRouting } from '../pipeline/envelope.js';
import type { FleetPresence } from './presence.js';

/** What a sensor session reports after each stored batch (GatewayContext.runtime), and when it ends. */
export interface ReceivedUsage {
  received(routing: SensorRouting, events: number, bytes: number): void;
  /** The session that connected at `connected_at` ended at `at` (Unix ms; sensor-hours run up to it). */
  sessionEnded?(session: { oid: string; sid: string; connected_at: number }, at: number): void;
}

/** runtime_mtd.mtd of a *_per_sensor event. */
export interface SensorRuntimeMetrics {
  bytes_recv: number;
  /** When the current connection was established, Unix seconds (0 when the sensor is offline). */
  conn_at: number;
  eps_in: number;
  eps_out: number;
  q_size: number;
}

/** One sensor's counters for its current connection (shared between cluster nodes as is). */
export interface RuntimeCounters {
  sid: string;
  /** connected_at of the session the counters belong to, Unix ms. */
  connAt: number;
  events: number;
  bytes: number;
}

export class SensorRuntime implements ReceivedUsage {
  private readonly bySid = new Map<string, RuntimeCounters>();
  /** Counters of sensors connected to other nodes, as last collected (cluster mode). */
  private remote = new Map<string, RuntimeCounters>();

  constructor(private readonly presence: Pick<FleetPresence, 'session' | 'isOnline'>) {}

  received(routing: SensorRouting, events: number, bytes: number): void {
    const connAt = this.presence.session(routing.sid)?.connected_at ?? 0;
    let c = this.bySid.get(routing.sid);
    if (!c || c.connAt !== connAt) this.bySid.set(routing.sid, (c = { sid: routing.sid, connAt, events: 0, bytes: 0 }));
    c.events += events;
    c.bytes += bytes;
  }

  /**
   * The sensor's metrics at `now` (Unix ms). eps_in is the average over the current connection; eps_out and
   * q_size are 0: Picket streams no events to sensors and queues nothing per session (tasks for an offline
   * sensor wait in the store, not in a session queue).
   */
  metrics(sid: string, now: number): SensorRuntimeMetrics {
    const session = this.presence.session(sid);
    if (!session) return { bytes_recv: 0, conn_at: 0, eps_in: 0, eps_out: 0, q_size: 0 };
    const own = this.bySid.get(sid);
    const c = own && own.connAt === session.connected_at ? own : this.remote.get(sid);
    const current = c && c.connAt === session.connected_at ? c : { events: 0, bytes: 0 };
    const seconds = Math.max(1, (now - session.connected_at) / 1000);
    return {
      bytes_recv: current.bytes,
      conn_at: Math.floor(session.connected_at / 1000),
      eps_in: Math.round((current.events / seconds) * 1000) / 1000,
      eps_out: 0,
      q_size: 0,
    };
  }

  /** The counters this node holds (what it answers when the cluster's leader collects them). */
  local(): RuntimeCounters[] {
    return [...this.bySid.values()];
  }

  /** Replaces what is known of sensors connected to other nodes with a fresh collection. */
  absorbRemote(counters: Iterable<RuntimeCounters>): void {
    const next = new Map<string, RuntimeCounters>();
    for (const c of counters) {
      const had = next.get(c.sid);
      // A sensor that moved between nodes may be reported twice: the newer connection wins.
      if (!had || had.connAt < c.connAt) next.set(c.sid, c);
    }
    this.remote = next;
  }

  /** Forgets sensors that are no longer connected (called on each tick, off the hot path). */
  prune(): void {
    for (const sid of this.bySid.keys()) if (!this.presence.isOnline(sid)) this.bySid.delete(sid);
  }
}

/** One ReceivedUsage call site in the session feeding several consumers (runtime metrics, billing). */
export function receivedBy(...consumers: ReceivedUsage[]): ReceivedUsage {
  return {
    received: (routing, events, bytes) => { for (const c of consumers) c.received(routing, events, bytes); },
    sessionEnded: (session, at) => { for (const c of consumers) c.sessionEnded?.(session, at); },
  };
}
