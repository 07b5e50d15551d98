// Everything a sensor session needs from the node it runs on.
import type { ServerConfig } from '../../config.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { EventWriter } from '../../pipeline/event-writer.js';
import type { AliveTracker } from '../../services/alive-tracker.js';
import type { IngestGovernor } from '../../services/ingest-governor.js';
import type { RefusalBackoff } from '../../services/refusal-backoff.js';
import type { ReceivedUsage } from '../../services/sensor-runtime.js';
import type { Tasking } from '../../services/tasking.js';
import type { Store } from '../../store/store.js';
import type { SessionAdmission } from './session-admission.js';
import type { SessionRegistry } from './session-registry.js';

export interface GatewayContext {
  config: ServerConfig;
  store: Store;
  writer: EventWriter;
  registry: SessionRegistry;
  /** Takes a slot for a new session (quota, clones, replacement), on this node or across the cluster. */
  admission: SessionAdmission;
  alive: AliveTracker;
  /** Growing retry-after for sensors refused over quota or as a clone. */
  refusals: RefusalBackoff;
  /** Says when a sender must pause (BACKOFF): ingestion behind, or its organization over its rate. */
  governor: IngestGovernor;
  /** Delivers queued tasks after a welcome and follows tasks from the sensor's answers. */
  tasking: Tasking;
  /** Told after each stored batch what a sensor sent (runtime metrics of schedule ticks, usage metering). */
  runtime?: ReceivedUsage;
  metrics: Metrics;
  logger: Logger;
  now(): number;
  /** Remembers the latest pending commit of a sensor's events. */
  trackCommit(sid: string, commit: Promise<void>): void;
  /** Resolves once every commit tracked for this sensor so far has settled. */
  commitsOf(sid: string): Promise<void>;
}
