// What every route module receives: the fastify instance (TypeBox-typed) and the node's services.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { ServerConfig } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import type { LiveStreams } from '../services/live-streams.js';
import type { OutputControl } from '../services/output-control.js';
import type { CloudAdapterControl } from '../services/cloud-adapter-control.js';
import type { FleetPresence } from '../services/presence.js';
import type { Tasking } from '../services/tasking.js';
import type { UsageReport } from '../services/usage-report.js';
import type { ArtifactService } from '../services/artifact-service.js';
import type { Store } from '../store/store.js';
import type { ApiKeyCache } from './auth.js';

/** Handlers of HTTP upgrades on the API's server, tried in order; each returns true when the path is its own. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;
export interface UpgradeRouter {
  add(handler: UpgradeHandler): void;
}

export type Readiness = () => { ready: true } | { ready: false; reason: string };

export interface ApiOptions {
  store: Store;
  presence: FleetPresence;
  metrics: Metrics;
  logger: Logger;
  config: ServerConfig;
  /** Submits cloud-produced events (quota_changed, ...) to the pipeline; resolves once they are stored. */
  emit: (events: ReadonlyArray<PipelineEvent>) => Promise<void>;
  /** Sends and follows tasks (POST /v1/{sid}). */
  tasking: Tasking;
  /** This node's outputs: configuration checks, delivery, status, test sends. */
  outputs: OutputControl;
  /** This node's cloud adapters: configuration checks, (re)starts, status, inbound webhooks. */
  cloudAdapters: CloudAdapterControl;
  /** Live streams of stored events (POST /v1/stream/{oid} and its WebSocket form). */
  live: LiveStreams;
  /** Metered usage per billing period (GET /v1/usage/{oid}); the route is absent without it. */
  usage?: UsageReport;
  /** Artifacts (POST /ingest, /v1/insight/{oid}/artifacts, ingestion keys); the routes are absent without it. */
  artifacts?: ArtifactService;
  /** WebSocket upgrade handlers beyond the sensor gateway; the API adds the live stream's. */
  upgrades: UpgradeRouter;
  /** Whether the node accepts work (false while starting or shutting down); /readyz reports it. */
  readiness: Readiness;
  /** TLS certificate and key: the API (and the gateway on the same server) is served over https. */
  https?: { cert: Buffer; key: Buffer } | undefined;
  /** Largest accepted request body, bytes (default 1 MiB). */
  bodyLimit?: number;
  /** How long a verified API key is trusted without asking the store again, ms (default 5000; 0 disables). */
  keyCacheMs?: number;
  /** Clock (ms), for tag expiry and creation times. */
  now?: () => number;
}

/** The API's fastify instance (typed with the http server; with TLS it is an https.Server with the same API). */
export type ApiApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression<RawServerDefault>, RawReplyDefaultExpression<RawServerDefault>, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface ApiContext {
  store: Store;
  presence: FleetPresence;
  metrics: Metrics;
  logger: Logger;
  config: ServerConfig;
  emit: (events: ReadonlyArray<PipelineEvent>) => Promise<void>;
  tasking: Tasking;
  outputs: OutputControl;
  cloudAdapters: CloudAdapterControl;
  live: LiveStreams;
  readiness: Readiness;
  keys: ApiKeyCache;
  now: () => number;
  /** "https" or "http": the scheme clients reach this API with when no public URL is configured. */
  scheme: 'http' | 'https';
}
