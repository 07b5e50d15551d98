// Prometheus metrics of one Picket node, exposed at /metrics. One registry per server instance so that
// several servers in one process (tests) do not share counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly sessionsActive = new Gauge({ name: 'picket_sensor_sessions', help: 'Sensor sessions currently established', registers: [this.registry] });
  readonly sessionsOpened = new Counter({ name: 'picket_sensor_sessions_opened_total', help: 'Sensor sessions established', registers: [this.registry] });
  readonly sessionsClosed = new Counter({ name: 'picket_sensor_sessions_closed_total', help: 'Sensor sessions ended, by reason', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly sessionsRefused = new Counter({ name: 'picket_sensor_sessions_refused_total', help: 'Sensor connections refused at admission, by reason (over_quota, clone, deleted, reenroll, admission_error)', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly sensorCrashes = new Counter({ name: 'picket_sensor_crashes_total', help: 'Sensor crashes reported (sensor_crash emitted)', registers: [this.registry] });
  readonly enrollments = new Counter({ name: 'picket_enrollments_total', help: 'Sensors enrolled', registers: [this.registry] });
  readonly eventsReceived = new Counter({ name: 'picket_events_received_total', help: 'Events received from sensors', registers: [this.registry] });
  readonly eventsStored = new Counter({ name: 'picket_events_stored_total', help: 'Events durably stored (sensor and cloud produced)', labelNames: ['stream'] as const, registers: [this.registry] });
  readonly batchesDuplicate = new Counter({ name: 'picket_batches_duplicate_total', help: 'Resent batches (or USP messages) recognised by sequence number and not stored again', registers: [this.registry] });
  readonly acksSent = new Counter({ name: 'picket_acks_sent_total', help: 'ACK_MESSAGES sent to sensors', registers: [this.registry] });
  readonly outputEventsSent = new Counter({ name: 'picket_output_events_sent_total', help: 'Events delivered by outputs, by module', labelNames: ['module'] as const, registers: [this.registry] });
  readonly outputBytesSent = new Counter({ name: 'picket_output_bytes_sent_total', help: 'Bytes of records delivered by outputs (JSON, before any compression), by organization and module', labelNames: ['oid', 'module'] as const, registers: [this.registry] });
  readonly outputFailures = new Counter({ name: 'picket_output_failures_total', help: 'Failed output deliveries (each retried later), by module', labelNames: ['module'] as const, registers: [this.registry] });
  readonly outputDropped = new Counter({ name: 'picket_output_dropped_total', help: 'Events an output skipped because its queue went over PICKET_OUTPUT_QUEUE_LIMIT with PICKET_OUTPUT_OVERFLOW=drop_oldest', labelNames: ['oid', 'output'] as const, registers: [this.registry] });
  readonly outputLag = new Gauge({ name: 'picket_output_lag_events', help: 'How far an output is behind the end of the event log, in log positions', labelNames: ['oid', 'output'] as const, registers: [this.registry] });
  readonly outputLogRowsRead = new Counter({ name: 'picket_output_log_rows_read_total', help: "Rows of the event log read by outputs, by source: memory (the embedded store's tail of what it just committed) or store (the database)", labelNames: ['source'] as const, registers: [this.registry] });
  readonly outputsPaused = new Gauge({ name: 'picket_outputs_paused', help: 'Outputs paused after repeated failures', registers: [this.registry] });
  readonly liveSubscribers = new Gauge({ name: 'picket_live_stream_subscribers', help: 'Live stream clients connected', registers: [this.registry] });
  readonly liveDropped = new Counter({ name: 'picket_live_stream_dropped_total', help: 'Lines dropped from live streams whose clients read too slowly (each client is told how many)', registers: [this.registry] });
  readonly eventsDuplicate = new Counter({ name: 'picket_events_duplicate_total', help: 'Events in resent batches (or USP messages) already stored: dropped, not stored twice', registers: [this.registry] });
  readonly backoffsSent = new Counter({ name: 'picket_backoffs_sent_total', help: 'BACKOFF sent to sensors and adapters, by kind (ingest_lag, org_rate)', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly orgEventsReceived = new Counter({ name: 'picket_org_events_received_total', help: 'Events received from sensors and adapters, by organization', labelNames: ['oid'] as const, registers: [this.registry] });
  readonly orgBytesReceived = new Counter({ name: 'picket_org_bytes_received_total', help: 'Bytes of event frames received from sensors and adapters (as on the wire), by organization', labelNames: ['oid'] as const, registers: [this.registry] });
  readonly protocolErrors = new Counter({ name: 'picket_protocol_errors_total', help: 'Sensor sessions closed for a protocol error, by reason', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly storeCommitSeconds = new Histogram({
    name: 'picket_store_commit_seconds',
    help: 'Duration of one group commit to the store',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly ingestQueueEvents = new Gauge({ name: 'picket_ingest_queue_events', help: 'Events received and waiting for their group commit', registers: [this.registry] });
  readonly ingestReadPauses = new Counter({ name: 'picket_ingest_read_pauses_total', help: "Times a sensor session stopped reading because the group commit queue held two groups' worth of events (it reads on once the queue is down to one)", registers: [this.registry] });
  readonly storeErrors = new Counter({ name: 'picket_store_errors_total', help: 'Failed store writes (the affected sessions are closed, nothing is acknowledged)', registers: [this.registry] });
  readonly relayPublished = new Counter({ name: 'picket_relay_published_total', help: 'Cluster mode: events of the log the leader published to the JetStream bus', registers: [this.registry] });
  readonly relayPosition = new Gauge({ name: 'picket_relay_position', help: 'Cluster mode: log position the leader has published to the bus up to', registers: [this.registry] });
  readonly relayErrors = new Counter({ name: 'picket_relay_errors_total', help: 'Cluster mode: relay steps that failed (retried)', registers: [this.registry] });
  readonly clusterLeader = new Gauge({ name: 'picket_cluster_leader', help: 'Cluster mode: 1 while this node is the leader (relay, schedule, billing periods, janitors, dead nodes)', registers: [this.registry] });
  readonly clusterNodesLost = new Counter({ name: 'picket_cluster_nodes_lost_total', help: 'Cluster mode: nodes this node, as leader, declared dead (their sessions ended on their behalf)', registers: [this.registry] });
  readonly leasesHeld = new Gauge({ name: 'picket_cluster_leases_held', help: 'Cluster mode: outputs and cloud adapters this node runs for the cluster (leases held), by kind', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly apiRequests = new Counter({ name: 'picket_api_requests_total', help: 'API requests, by method and status code', labelNames: ['method', 'status'] as const, registers: [this.registry] });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'picket_' });
  }
}
