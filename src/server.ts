// One Picket node: store, pipeline, sensor gateway and API wired together, with an orderly shutdown.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { buildApi } from './api/app.js';
import { MemoryBus } from './bus/memory-bus.js';
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
import { SensorGateway } from './sources/gateway/sensor-gateway.js';
import { SessionRegistry } from './sources/gateway/session-registry.js';
import { openStore } from './store/open-store.js';
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
  live: LiveStreamHub;
  /** Credentials created on this start (first start of an empty store only). */
  bootstrap: BootstrapCredentials | null;
  /** Path of credentials.json when it exists. */
  credentialsFile: string | null;
  /** Forgets sensors deleted 30 days ago now (also runs every purgeIntervalS); returns their sids. */
  forgetDeletedSensors(): Promise<string[]>;
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

  const store = openStore(config);
  await store.migrate();
  const fresh = await bootstrapStore(store, now());

  const metrics = new Metrics();
  const bus = new MemoryBus();
  const writer = new EventWriter(store, bus, metrics, logger.child({ component: 'writer' }), config.commitMaxEvents);
  const registry = new SessionRegistry();
  const alive = new AliveTracker(store, logger.child({ component: 'alive' }), config.aliveFlushMs);
  const refusals = new RefusalBackoff({ baseS: config.refusalRetryBaseS, capS: config.refusalRetryCapS });
  const tasking = new Tasking({ store, presence: registry, write: (events, tasks) => writer.submit(events, undefined, tasks), logger: logger.child({ component: 'tasking' }), now });
  const governor = new IngestGovernor(
    { queueEvents: config.backoffQueueEvents, latencyMs: config.backoffLatencyMs, lagBackoffS: config.backoffSeconds, orgEpsLimit: config.orgEpsLimit },
    () => ({ pendingEvents: writer.pendingEvents, oldestWaitMs: writer.oldestWaitMs() }),
  );
  const gateway = new SensorGateway({ config, store, writer, registry, alive, refusals, governor, tasking, metrics, logger: logger.child({ component: 'gateway' }), now });
  const outputs = new OutputManager({
    store, bus, metrics, logger: logger.child({ component: 'outputs' }), modules: OUTPUT_MODULES, dataDir: config.dataDir, now,
    policy: {
      retryBaseMs: config.outputRetryBaseS * 1000, retryCapMs: config.outputRetryCapS * 1000, pauseAfter: config.outputPauseAfter,
      pauseMs: config.outputPauseS * 1000, queueLimit: config.outputQueueLimit, overflow: config.outputOverflow, idlePollMs: 1000,
    },
  });
  const live = new LiveStreamHub(bus, metrics, { keepaliveMs: config.liveKeepaliveS * 1000, maxQueuedLines: 10_000 });
  const upgradeHandlers: UpgradeHandler[] = [(req, socket, head) => gateway.handleUpgrade(req, socket, head)];
  const janitor = new DeletedSensorJanitor(store, logger.child({ component: 'janitor' }), now, config.purgeIntervalS * 1000);

  let ready = false;
  let readyReason = 'starting';
  const https = config.tlsCert && config.tlsKey ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) } : undefined;
  const app = await buildApi({
    store, presence: registry, metrics, logger: logger.child({ component: 'api' }), config, now,
    emit: (events) => writer.submit(events),
    tasking,
    outputs,
    live,
    upgrades: { add: (handler) => upgradeHandlers.push(handler) },
    readiness: () => (ready ? { ready: true } : { ready: false, reason: readyReason }),
    https,
  });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!upgradeHandlers.some((handle) => handle(req, socket, head))) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  await app.listen({ host: config.host, port: config.port });
  const port = (app.server.address() as AddressInfo).port;
  const scheme = https ? 'https' : 'http';
  const displayHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = (config.publicUrl ?? `${scheme}://${displayHost}:${port}`).replace(/\/+$/, '');

  await outputs.start();
  alive.start();
  gateway.start();
  janitor.start();

  const bootstrap: BootstrapCredentials | null = fresh ? { url, ...fresh } : null;
  const credentialsPath = path.join(config.dataDir, 'credentials.json');
  if (bootstrap && config.writeCredentialsFile) {
    writeFileSync(credentialsPath, JSON.stringify(bootstrap, null, 2) + '\n', { mode: 0o600 });
  } else if (existsSync(credentialsPath)) {
    refreshCredentialsUrl(credentialsPath, url, logger);
  }
  ready = true;
  logger.info({ url, sensor_url: `${url.replace(/^http/, 'ws')}/sensor`, store: store.description, first_start: Boolean(bootstrap) }, 'picket ready');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      ready = false;
      readyReason = 'shutting down';
      logger.info('picket shutting down');
      await janitor.stop();
      await gateway.close();
      await writer.close();
      // After the writer: everything stored is visible to the outputs; each stops after its send in flight.
      await outputs.stop();
      live.close();
      await alive.stop();
      await app.close();
      await bus.close();
      await store.close();
      logger.info('picket stopped');
    })();
    return closing;
  };

  return {
    url, port, config, store, metrics, registry, writer, outputs, live, bootstrap,
    credentialsFile: existsSync(credentialsPath) ? credentialsPath : null,
    forgetDeletedSensors: () => janitor.sweep(),
    close,
  };
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
