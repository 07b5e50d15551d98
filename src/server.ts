// One Picket node: store, pipeline, sensor gateway and API wired together, with an orderly shutdown.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { buildApi } from './api/app.js';
import { MemoryBus } from './bus/memory-bus.js';
import { DataDirLock } from './data-dir-lock.js';
import { ClusterNode } from './cluster/cluster-node.js';
import type { ServerConfig } from './config.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { EventWriter } from './pipeline/event-writer.js';
import { AliveTracker } from './services/alive-tracker.js';
import { bootstrapStore, type BootstrapCredentials } from './services/bootstrap.js';
import { DeletedSensorJanitor } from './services/deleted-sensor-janitor.js';
import { RefusalBackoff } from './services/refusal-backoff.js';
import { Tasking } from './services/tasking.js';
import { IngestGovernor } from './services/ingest-governor.js';
import type { UpgradeHandler } from './api/context.js';
import { LiveStreamHub } from './sinks/live/live-stream-hub.js';
import { OutputManager } from './sinks/outputs/output-manager.js';
import { OUTPUT_MODULES } from './sinks/outputs/modules/index.js';
import { CloudAdapterManager } from './sources/cloud-adapters/cloud-adapter-manager.js';
import { SensorGateway } from './sources/gateway/sensor-gateway.js';
import { SessionRegistry } from './sources/gateway/session-registry.js';
import { LocalAdmission } from './sources/gateway/session-admission.js';
import { BillingEmitter } from './sources/platform/billing-emitter.js';
import { ScheduleTicker } from './sources/platform/schedule-ticker.js';
import { ArtifactService } from './services/artifact-service.js';
import { receivedBy, SensorRuntime } from './services/sensor-runtime.js';
import { UsageMeter } from './services/usage-meter.js';
import { MeteredUsageReport } from './services/usage-report.js';
import type { EventBus } from './bus/event-bus.js';
import { openStore, postgresOptions } from './store/open-store.js';
import { PostgresStore } from './store/postgres/postgres-store.js';
import type { FleetPresence } from './services/presence.js';
import type { SessionAdmission } from './sources/gateway/session-admission.js';
import type { Store } from './store/store.js';

export interface RunningServer {
  /** Base URL of the API; sensors connect to the same host at /sensor. */
  url: string;
  port: number;
  config: ServerConfig;
  store: Store;
  metrics: Metrics;
  registry: SessionRegistry;
  writer: EventWriter;
  outputs: OutputManager;
  /** Cloud adapters run by this node (webhooks, pollers, syslog listeners). */
  cloudAdapters: CloudAdapterManager;
  live: LiveStreamHub;
  bus: EventBus;
  /** The cluster side of this node (PICKET_BUS); null on a single node. */
  cluster: ClusterNode | null;
  /** Who is online, cluster-wide in a cluster. */
  presence: FleetPresence;
  /** Schedule ticks (docs/schedule-and-billing.md); tick() checks the clock now. */
  schedule: ScheduleTicker;
  /** Billing periods and usage counters; tick() flushes and closes ended periods now. */
  billing: BillingEmitter;
  /** Credentials created on this start (first start of an empty store only). */
  bootstrap: BootstrapCredentials | null;
  /** Path of credentials.json when it exists. */
  credentialsFile: string | null;
  /** Forgets sensors deleted 30 days ago now (also runs every purgeIntervalS); returns their sids. */
  forgetDeletedSensors(): Promise<string[]>;
  /** Artifacts: ingest, exports, and the retention janitor (artifacts.janitor.sweep() purges now). */
  artifacts: ArtifactService;
  close(): Promise<void>;
}

export interface ServerOptions {
  logger?: Logger;
  /** Injectable clock (ms) for time-window tests. */
  now?: () => number;
}

export async function startServer(config: ServerConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const now = options.now ?? Date.now;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // The embedded store is one process's: a second server on its directory is refused here, before it
  // reads or writes anything. Nodes on PostgreSQL may share a data directory (shared storage for artifacts
  // and file outputs, docs/scaling.md); the store itself refuses a second single node on its schema.
  const dirLock = config.store === undefined ? DataDirLock.acquire(config.dataDir, now()) : null;

  let store: Store;
  try {
    store = openStore(config, logger.child({ component: 'store' }));
  } catch (err) {
    dirLock?.release();
    throw err;
  }
  try {
    await store.migrate();
  } catch (err) {
    // A store that cannot be used (in use by another node, unreachable, too new) must not keep the process alive.
    await store.close().catch(() => undefined);
    dirLock?.release();
    throw err;
  }

  const metrics = new Metrics();
  store.observeLogReads?.((source, rows) => metrics.outputLogRowsRead.inc({ source }, rows));
  const registry = new SessionRegistry();
  let cluster: ClusterNode | null = null;
  if (config.bus !== undefined) {
    if (!(store instanceof PostgresStore)) throw new Error('the cluster mode needs a PostgreSQL store');
    try {
      cluster = await ClusterNode.connect({
        busUrl: config.bus, nodeId: config.nodeId, schema: postgresOptions(config.store!).schema, store, cluster: store.cluster, registry,
        nodeTimeoutMs: config.clusterNodeTimeoutS * 1000, busRetentionMs: config.busRetentionH * 3_600_000, metrics, logger: logger.child({ component: 'cluster' }), now,
      });
    } catch (err) {
      await store.close().catch(() => undefined);
      dirLock?.release();
      throw err;
    }
  }
  const bus: EventBus = cluster?.bus ?? new MemoryBus();
  const presence: FleetPresence = cluster?.presence ?? registry;
  const writer = new EventWriter(store, bus, metrics, logger.child({ component: 'writer' }), config.commitMaxEvents);
  const runtime = new SensorRuntime(presence);
  const usage = new UsageMeter(store, config.billingPeriodS * 1000, now, { sessions: () => registry.all() }, logger.child({ component: 'usage' }));
  const alive = new AliveTracker(store, logger.child({ component: 'alive' }), config.aliveFlushMs);
  const refusals = new RefusalBackoff({ baseS: config.refusalRetryBaseS, capS: config.refusalRetryCapS });
  const tasking = new Tasking({ store, presence, write: (events, tasks) => writer.submit(events, undefined, tasks), logger: logger.child({ component: 'tasking' }), now });
  const governor = new IngestGovernor(
    { queueEvents: config.backoffQueueEvents, latencyMs: config.backoffLatencyMs, lagBackoffS: config.backoffSeconds, orgEpsLimit: config.orgEpsLimit },
    () => ({ pendingEvents: writer.pendingEvents, oldestWaitMs: writer.oldestWaitMs() }),
  );
  const admission: SessionAdmission = cluster?.admission ?? new LocalAdmission(registry);
  const gateway = new SensorGateway({ config, store, writer, registry, admission, alive, refusals, governor, tasking, metrics, logger: logger.child({ component: 'gateway' }), runtime: receivedBy(runtime, usage), now });
  const outputs = new OutputManager({
    store, bus, metrics, logger: logger.child({ component: 'outputs' }), modules: OUTPUT_MODULES, dataDir: config.dataDir, now, usage,
    ...(cluster ? { placement: cluster.placement, queues: cluster.outputQueues } : {}),
    policy: {
      retryBaseMs: config.outputRetryBaseS * 1000, retryCapMs: config.outputRetryCapS * 1000, pauseAfter: config.outputPauseAfter,
      pauseMs: config.outputPauseS * 1000, queueLimit: config.outputQueueLimit, overflow: config.outputOverflow, idlePollMs: 1000,
    },
  });
  const cloudAdapters = new CloudAdapterManager({
    pipeline: { store, submit: (events) => writer.submit(events), now }, logger: logger.child({ component: 'cloud_adapters' }),
    retry: { baseMs: config.cloudAdapterRetryBaseS * 1000, capMs: config.cloudAdapterRetryCapS * 1000 }, defaultGraceMs: config.cloudAdapterGraceS * 1000,
    ...(cluster ? { placement: cluster.placement, webhooks: cluster.webhooks } : {}),
  });
  const live = new LiveStreamHub(bus, metrics, { keepaliveMs: config.liveKeepaliveS * 1000, maxQueuedLines: 10_000 });
  const upgradeHandlers: UpgradeHandler[] = [(req, socket, head) => gateway.handleUpgrade(req, socket, head)];
  const janitor = new DeletedSensorJanitor(store, logger.child({ component: 'janitor' }), now, config.purgeIntervalS * 1000);
  const artifacts = new ArtifactService({
    store, dataDir: config.dataDir, emit: (events, writes) => writer.submit(events, undefined, writes), now, logger: logger.child({ component: 'artifacts' }),
    maxBytes: config.artifactMaxBytes, defaultRetentionDays: config.artifactRetentionDays, purgeIntervalMs: config.artifactPurgeIntervalS * 1000,
  });
  // The cloud adapter manager is the adapters' directory; artifact storage reports the bytes it keeps.
  const schedule = new ScheduleTicker({
    store, bus, presence, runtime, adapters: cloudAdapters, now, logger: logger.child({ component: 'schedule' }),
    ...(cluster ? { beforeTick: () => cluster.runtime.collect(runtime) } : {}),
  });
  cluster?.runtime.serve(runtime);
  // Every node flushes its usage; in a cluster only the leader closes periods, once the others' last flush is in.
  const billing = new BillingEmitter({
    store, bus, meter: usage, artifacts, now, logger: logger.child({ component: 'billing' }), intervalMs: config.usageFlushMs,
    ...(cluster ? { closesPeriods: () => cluster.isLeader, closeGraceMs: 3 * config.usageFlushMs } : {}),
  });

  let ready = false;
  let readyReason = 'starting';
  const https = config.tlsCert && config.tlsKey ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) } : undefined;
  const app = await buildApi({
    store, presence, metrics, logger: logger.child({ component: 'api' }), config, now,
    emit: (events) => writer.submit(events),
    usage: new MeteredUsageReport(store, usage, artifacts, now),
    artifacts,
    tasking,
    outputs,
    cloudAdapters,
    live,
    upgrades: { add: (handler) => upgradeHandlers.push(handler) },
    readiness: () => (!ready ? { ready: false, reason: readyReason } : cluster && !cluster.connected ? { ready: false, reason: 'the NATS connection is closed' } : { ready: true }),
    https,
  });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!upgradeHandlers.some((handle) => handle(req, socket, head))) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  /** A start that fails before anything runs (no session, output or timer) gives back what it opened. */
  const abandon = async (): Promise<void> => {
    await app.close().catch(() => undefined);
    await writer.close().catch(() => undefined);
    await bus.close().catch(() => undefined);
    await cluster?.disconnect().catch(() => undefined);
    await store.close().catch(() => undefined);
    dirLock?.release();
  };
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await abandon();
    throw listenError(err, config);
  }
  const port = (app.server.address() as AddressInfo).port;
  const scheme = https ? 'https' : 'http';
  const displayHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = (config.publicUrl ?? `${scheme}://${displayHost}:${port}`).replace(/\/+$/, '');

  // The first organization and its keys only once the node has its port, and written down at once: a
  // first start that fails earlier (the port in use) creates nothing, so no admin key is ever lost.
  let bootstrap: BootstrapCredentials | null;
  try {
    const fresh = await bootstrapStore(store, now());
    bootstrap = fresh ? { url, ...fresh } : null;
  } catch (err) {
    await abandon();
    throw err;
  }
  const credentialsPath = path.join(config.dataDir, 'credentials.json');
  if (bootstrap && config.writeCredentialsFile) {
    writeFileSync(credentialsPath, JSON.stringify(bootstrap, null, 2) + '\n', { mode: 0o600 });
  } else if (existsSync(credentialsPath)) {
    refreshCredentialsUrl(credentialsPath, url, logger);
  }

  // In a cluster the node joins before its outputs start, so that placement knows the live nodes; the
  // leader alone runs the schedule (and the relay and the dead-node sweep, see cluster-node.ts).
  if (cluster) await cluster.join(url, [{ name: 'schedule', start: () => schedule.start(), stop: () => schedule.stop() }], (events) => writer.submit(events));
  await outputs.start();
  await cloudAdapters.start();
  alive.start();
  gateway.start();
  janitor.start();
  await artifacts.start();
  if (!cluster) schedule.start();
  billing.start();

  ready = true;
  logger.info({ url, sensor_url: `${url.replace(/^http/, 'ws')}/sensor`, store: store.description, first_start: Boolean(bootstrap), ...(cluster ? { node: cluster.nodeId, bus: cluster.names.stream } : {}) }, 'picket ready');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      ready = false;
      readyReason = 'shutting down';
      logger.info('picket shutting down');
      await janitor.stop();
      await cluster?.stopLeading();
      // Before the writer: an export finishing now still emits export_complete.
      await artifacts.close();
      usage.sampleOnline(); // sensor-hours up to now, before the sessions close
      await gateway.close();
      await cloudAdapters.stop();
      await writer.close();
      // After the writer: everything stored is visible to the outputs; each stops after its send in flight.
      await outputs.stop();
      await schedule.stop();
      await billing.stop();
      await cluster?.leave();
      live.close();
      await alive.stop();
      await app.close();
      await bus.close();
      await cluster?.disconnect();
      await store.close();
      dirLock?.release();
      logger.info('picket stopped');
    })();
    return closing;
  };

  return {
    url, port, config, store, metrics, registry, writer, outputs, live, bootstrap,
    bus, schedule, billing, cluster, presence,
    cloudAdapters,
    credentialsFile: existsSync(credentialsPath) ? credentialsPath : null,
    forgetDeletedSensors: () => janitor.sweep(),
    artifacts,
    close,
  };
}

/** What a user can act on when the port cannot be had. */
function listenError(err: unknown, config: ServerConfig): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${config.host}:${config.port}`;
  if (code === 'EADDRINUSE') return new Error(`cannot listen on ${where}: the port is in use (another Picket, or another program); stop it, or give this node another port (--port / PICKET_PORT)`);
  if (code === 'EACCES') return new Error(`cannot listen on ${where}: not allowed (ports below 1024 need privileges); give another port (--port / PICKET_PORT)`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') return new Error(`cannot listen on ${where}: this machine has no such address; give another host (--host / PICKET_HOST)`);
  return err instanceof Error ? err : new Error(String(err));
}

/** Keeps the CLI pointed at the right place when the port or public URL changed since first start. */
function refreshCredentialsUrl(file: string, url: string, logger: Logger): void {
  try {
    const creds = JSON.parse(readFileSync(file, 'utf8')) as BootstrapCredentials;
    if (creds.url !== url) writeFileSync(file, JSON.stringify({ ...creds, url }, null, 2) + '\n', { mode: 0o600 });
  } catch (err) {
    logger.warn({ err, file }, 'could not update credentials.json');
  }
}
