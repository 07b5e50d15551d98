// Names a cluster uses on NATS, derived from the PostgreSQL schema it runs on, so several installations
// (or test runs) share one NATS without seeing each other's subjects or streams.
import type { StreamName } from '../bus/event-bus.js';

export interface ClusterNames {
  /** Namespace: the schema name, or "public". */
  readonly ns: string;
  /** The JetStream stream holding the cluster's events. */
  readonly stream: string;
  /** Subjects of that stream (wildcard). */
  readonly eventSubjects: string;
  /** Subject of one organization's events of one stream. */
  events(stream: StreamName, oid: string): string;
  /** Requests for one node (tasks, closes) — core NATS request/reply. */
  node(nodeId: string): string;
  /** The leader collects a node's per-sensor runtime counters here before schedule ticks. */
  runtime(nodeId: string): string;
  /** Broadcast: sessions going up and down anywhere in the cluster. */
  readonly presence: string;
  /** Broadcast: an output or cloud adapter was changed through some node's API. */
  readonly control: string;
  /** "Something was stored": wakes the leader's relay. */
  readonly relayWake: string;
  /** Prefix of the subjects webhook posts are forwarded on (`<prefix>.<oid>.<hex name>`). */
  readonly webhookPrefix: string;
}

export function clusterNames(schema: string | undefined): ClusterNames {
  const ns = schema ?? 'public';
  const prefix = `picket.${ns}`;
  return {
    ns,
    stream: `PICKET_${ns.toUpperCase()}`,
    eventSubjects: `${prefix}.ev.>`,
    events: (stream, oid) => `${prefix}.ev.${stream}.${oid}`,
    node: (nodeId) => `${prefix}.node.${nodeId}`,
    runtime: (nodeId) => `${prefix}.runtime.${nodeId}`,
    presence: `${prefix}.presence`,
    control: `${prefix}.control`,
    relayWake: `${prefix}.relay.wake`,
    webhookPrefix: `${prefix}.webhook`,
  };
}
