// Server configuration: every setting, its environment variable, default and meaning. The README's
// configuration table is this list. CLI flags of `picket serve` override the environment.
import path from 'node:path';

export interface ServerConfig {
  /** Directory for the embedded store and local state. */
  dataDir: string;
  /**
   * Where state and events live: undefined for the embedded SQLite file in dataDir, or a
   * postgres:// (postgresql://) URL for a PostgreSQL database shared by cluster nodes.
   */
  store: string | undefined;
  /**
   * A nats:// URL (comma-separated for several servers): the cluster mode, with NATS JetStream as the
   * event bus and node-to-node channel. Needs a PostgreSQL store. undefined: one node, in-process bus.
   */
  bus: string | undefined;
  /** This node's name in the cluster (default: random per start). */
  nodeId: string | undefined;
  /** A cluster node silent this long (seconds) is dead: its sessions are closed on its behalf. */
  clusterNodeTimeoutS: number;
  /** Hours the JetStream stream keeps events (the bus, not the store). */
  busRetentionH: number;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** URL sensors and CLI should use; derived from host/port when unset. */
  publicUrl: string | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Seconds between SYNC heartbeats a sensor is asked to send. */
  syncIntervalS: number;
  /** Seconds between server pings on a sensor session. */
  pingIntervalS: number;
  /** A sensor session silent this long (seconds) is closed and DISCONNECTED emitted. */
  livenessTimeoutS: number;
  /** Seconds a new connection has to send its hello. */
  helloTimeoutS: number;
  /** Largest sensor frame accepted, bytes. */
  maxFrameBytes: number;
  /** Most events in one batch. */
  maxBatchEvents: number;
  /** Batches a session may have in flight (received, not yet stored) before the server stops reading it. */
  maxInflightBatches: number;
  /** Most events written in one store transaction (group commit). */
  commitMaxEvents: number;
  /** USP flow-control window told to adapters (`fl`): messages in flight without an ack. */
  uspWindow: number;
  /** BACKOFF when this many received events wait for their commit (ingestion behind). */
  backoffQueueEvents: number;
  /** BACKOFF when the oldest event waiting for its commit has waited this long, ms. */
  backoffLatencyMs: number;
  /** Seconds of the BACKOFF sent when ingestion is behind. */
  backoffSeconds: number;
  /** Events per second an organization may send before its senders get BACKOFF; 0 = no limit. */
  orgEpsLimit: number;
  /** First retry delay of a failing output, seconds (doubles per failure). */
  outputRetryBaseS: number;
  /** Longest retry delay of a failing output, seconds. */
  outputRetryCapS: number;
  /** Consecutive failures after which an output is paused. */
  outputPauseAfter: number;
  /** How long a paused output waits before it tries again, seconds. */
  outputPauseS: number;
  /** Events an output may fall behind the log before its overflow policy applies. */
  outputQueueLimit: number;
  /** What happens beyond the limit: "keep" (keep everything, warn) or "drop_oldest" (skip ahead, counted). */
  outputOverflow: 'keep' | 'drop_oldest';
  /** Seconds a cloud adapter may keep failing before it is disabled, unless it sets its own grace_period. */
  cloudAdapterGraceS: number;
  /** First retry delay of a failing cloud adapter, seconds (doubles per failure). */
  cloudAdapterRetryBaseS: number;
  /** Longest retry delay of a failing cloud adapter, seconds. */
  cloudAdapterRetryCapS: number;
  /** Seconds between {"__trace":"keepalive"} lines on live streams. */
  liveKeepaliveS: number;
  /** Milliseconds between alive-time flushes to the store. */
  aliveFlushMs: number;
  /** Length of a billing period (billing_record), seconds; periods are aligned to UTC multiples of it. */
  billingPeriodS: number;
  /** Milliseconds between flushes of usage counters to the store (and checks for ended billing periods). */
  usageFlushMs: number;
  /** First retry-after (seconds) told to a sensor refused over quota or as a clone; doubles on each refusal. */
  refusalRetryBaseS: number;
  /** Largest retry-after, seconds. */
  refusalRetryCapS: number;
  /** Seconds between sweeps that forget sensors deleted 30 days ago. */
  purgeIntervalS: number;
  /** Days an artifact is kept when its upload sets no lc-retention-days. */
  artifactRetentionDays: number;
  /** Seconds between sweeps that delete artifacts past their retention. */
  artifactPurgeIntervalS: number;
  /** Largest artifact accepted (all parts together), bytes. */
  artifactMaxBytes: number;
  /** SQLite synchronous mode: "full" (fsync each commit) or "normal" (crash-safe, not power-loss safe). */
  sqliteSync: 'full' | 'normal';
  /** Run the embedded store's group commits on a thread of their own (default), or on the event loop. */
  sqliteAppendThread: boolean;
  /** Write data/credentials.json (admin API key and first installation key, mode 0600) on first start. */
  writeCredentialsFile: boolean;
  logLevel: string;
}

export interface ConfigSetting {
  key: keyof ServerConfig;
  env: string;
  flag: string;
  default: string;
  description: string;
}

export const CONFIG_SETTINGS: ConfigSetting[] = [
  { key: 'dataDir', env: 'PICKET_DATA_DIR', flag: '--data <dir>', default: './data', description: 'Directory holding the embedded store (picket.db) and credentials.json.' },
  { key: 'store', env: 'PICKET_STORE', flag: '--store <url>', default: '(embedded: <data>/picket.db)', description: 'A postgres://user@host:5432/db URL to keep state and events in PostgreSQL instead of the embedded SQLite file Parameters: ?schema=name (tables in that schema, created if missing) and &pool_size=n (connections per node, default 10).' },
  { key: 'bus', env: 'PICKET_BUS', flag: '--bus <url>', default: '(none: one node)', description: 'A nats://host:4222 URL (comma-separated for several servers) to run as one node of a cluster: NATS JetStream carries the event bus and node-to-node messages. Needs a postgres:// store shared by every node (docs/scaling.md).' },
  { key: 'nodeId', env: 'PICKET_NODE_ID', flag: '--node-id <name>', default: '(random per start)', description: 'This node\'s name in the cluster (letters, digits, - and _).' },
  { key: 'clusterNodeTimeoutS', env: 'PICKET_CLUSTER_NODE_TIMEOUT', flag: '--cluster-node-timeout <seconds>', default: '10', description: 'A cluster node whose heartbeat is older than this is dead: the leader closes its sessions (DISCONNECTED) on its behalf.' },
  { key: 'busRetentionH', env: 'PICKET_BUS_RETENTION_H', flag: '--bus-retention-h <hours>', default: '168', description: 'Hours the JetStream stream of the cluster keeps events for outputs and live streams (the store keeps them longer).' },
  { key: 'host', env: 'PICKET_HOST', flag: '--host <host>', default: '127.0.0.1', description: 'Address the API and sensor gateway listen on (0.0.0.0 for all interfaces).' },
  { key: 'port', env: 'PICKET_PORT', flag: '--port <port>', default: '4830', description: 'TCP port of the API and the sensor gateway (0 = any free port).' },
  { key: 'publicUrl', env: 'PICKET_PUBLIC_URL', flag: '--public-url <url>', default: '(from host/port)', description: 'URL printed for sensors and the CLI, when behind a proxy or NAT.' },
  { key: 'tlsCert', env: 'PICKET_TLS_CERT', flag: '--tls-cert <file>', default: '(none)', description: 'PEM certificate; with --tls-key serves https and wss.' },
  { key: 'tlsKey', env: 'PICKET_TLS_KEY', flag: '--tls-key <file>', default: '(none)', description: 'PEM private key for --tls-cert.' },
  { key: 'syncIntervalS', env: 'PICKET_SYNC_INTERVAL', flag: '--sync-interval <seconds>', default: '600', description: 'Seconds between SYNC heartbeats sensors are asked to send.' },
  { key: 'pingIntervalS', env: 'PICKET_PING_INTERVAL', flag: '--ping-interval <seconds>', default: '20', description: 'Seconds between WebSocket pings on each sensor session.' },
  { key: 'livenessTimeoutS', env: 'PICKET_LIVENESS_TIMEOUT', flag: '--liveness-timeout <seconds>', default: '60', description: 'A session silent this long is closed and DISCONNECTED (reason "timeout") emitted.' },
  { key: 'helloTimeoutS', env: 'PICKET_HELLO_TIMEOUT', flag: '--hello-timeout <seconds>', default: '10', description: 'Seconds a new sensor connection has to send hello.' },
  { key: 'maxFrameBytes', env: 'PICKET_MAX_FRAME_BYTES', flag: '--max-frame-bytes <bytes>', default: '1048576', description: 'Largest sensor frame accepted; larger frames close the session (1009).' },
  { key: 'maxBatchEvents', env: 'PICKET_MAX_BATCH_EVENTS', flag: '--max-batch-events <n>', default: '5000', description: 'Most events in one batch.' },
  { key: 'maxInflightBatches', env: 'PICKET_MAX_INFLIGHT_BATCHES', flag: '--max-inflight-batches <n>', default: '32', description: 'Unacknowledged batches per session before the server stops reading from it.' },
  { key: 'commitMaxEvents', env: 'PICKET_COMMIT_MAX_EVENTS', flag: '--commit-max-events <n>', default: '20000', description: 'Most events per store transaction (group commit).' },
  { key: 'uspWindow', env: 'PICKET_USP_WINDOW', flag: '--usp-window <n>', default: '1024', description: 'Flow-control window told to USP adapters (fl): messages they may send without an ack.' },
  { key: 'backoffQueueEvents', env: 'PICKET_BACKOFF_QUEUE_EVENTS', flag: '--backoff-queue-events <n>', default: '200000', description: 'Ingestion is behind when this many received events wait for their commit: senders get BACKOFF.' },
  { key: 'backoffLatencyMs', env: 'PICKET_BACKOFF_LATENCY_MS', flag: '--backoff-latency-ms <ms>', default: '2000', description: 'Ingestion is behind when the oldest event waiting for its commit has waited this long: senders get BACKOFF.' },
  { key: 'backoffSeconds', env: 'PICKET_BACKOFF_SECONDS', flag: '--backoff-seconds <seconds>', default: '5', description: 'Length of the BACKOFF sent while ingestion is behind.' },
  { key: 'orgEpsLimit', env: 'PICKET_ORG_EPS_LIMIT', flag: '--org-eps-limit <events/s>', default: '0', description: 'Events per second one organization may send; above it its senders get BACKOFF until the excess is paid back (0 = no limit).' },
  { key: 'outputRetryBaseS', env: 'PICKET_OUTPUT_RETRY_BASE', flag: '--output-retry-base <seconds>', default: '1', description: 'First retry delay of a failing output; doubles on each failure (with jitter).' },
  { key: 'outputRetryCapS', env: 'PICKET_OUTPUT_RETRY_CAP', flag: '--output-retry-cap <seconds>', default: '60', description: 'Longest retry delay of a failing output.' },
  { key: 'outputPauseAfter', env: 'PICKET_OUTPUT_PAUSE_AFTER', flag: '--output-pause-after <failures>', default: '10', description: 'Consecutive failures after which an output is paused (its last error stays readable at GET /v1/errors/{oid}).' },
  { key: 'outputPauseS', env: 'PICKET_OUTPUT_PAUSE', flag: '--output-pause <seconds>', default: '300', description: 'How long a paused output waits before trying again (updating its configuration retries at once).' },
  { key: 'outputQueueLimit', env: 'PICKET_OUTPUT_QUEUE_LIMIT', flag: '--output-queue-limit <events>', default: '1000000', description: 'Events an output may fall behind the event log before PICKET_OUTPUT_OVERFLOW applies.' },
  { key: 'outputOverflow', env: 'PICKET_OUTPUT_OVERFLOW', flag: '--output-overflow <policy>', default: 'keep', description: '"keep": an output over its limit keeps everything and catches up later (logged, metric picket_output_lag_events); "drop_oldest": it skips ahead to the limit, counting what it skipped in picket_output_dropped_total and its errors.' },
  { key: 'cloudAdapterGraceS', env: 'PICKET_CLOUD_ADAPTER_GRACE', flag: '--cloud-adapter-grace <seconds>', default: '3600', description: 'How long a cloud adapter may keep failing before it is disabled and cloud_adapter_disabled is emitted (an adapter\'s own grace_period overrides it).' },
  { key: 'cloudAdapterRetryBaseS', env: 'PICKET_CLOUD_ADAPTER_RETRY_BASE', flag: '--cloud-adapter-retry-base <seconds>', default: '1', description: 'First retry delay of a failing cloud adapter; doubles on each failure (with jitter).' },
  { key: 'cloudAdapterRetryCapS', env: 'PICKET_CLOUD_ADAPTER_RETRY_CAP', flag: '--cloud-adapter-retry-cap <seconds>', default: '300', description: 'Longest retry delay of a failing cloud adapter.' },
  { key: 'liveKeepaliveS', env: 'PICKET_LIVE_KEEPALIVE', flag: '--live-keepalive <seconds>', default: '60', description: 'Seconds between {"__trace":"keepalive"} lines on live streams.' },
  { key: 'billingPeriodS', env: 'PICKET_BILLING_PERIOD', flag: '--billing-period <seconds>', default: '3600', description: 'Length of a billing period: one billing_record per organization, metric and period, aligned to UTC multiples of it.' },
  { key: 'usageFlushMs', env: 'PICKET_USAGE_FLUSH_MS', flag: '--usage-flush-ms <ms>', default: '10000', description: 'How often usage counters are written to the store, in one batch (a crash loses at most this much metering).' },
  { key: 'aliveFlushMs', env: 'PICKET_ALIVE_FLUSH_MS', flag: '--alive-flush-ms <ms>', default: '5000', description: 'How often last-seen times are written to the store, in one batch.' },
  { key: 'refusalRetryBaseS', env: 'PICKET_REFUSAL_RETRY_BASE', flag: '--refusal-retry-base <seconds>', default: '30', description: 'Retry-after told to a sensor refused over quota or as a clone; doubles on each refusal of the same sensor.' },
  { key: 'refusalRetryCapS', env: 'PICKET_REFUSAL_RETRY_CAP', flag: '--refusal-retry-cap <seconds>', default: '1800', description: 'Largest retry-after told to a refused sensor.' },
  { key: 'purgeIntervalS', env: 'PICKET_PURGE_INTERVAL', flag: '--purge-interval <seconds>', default: '3600', description: 'How often sensors deleted more than 30 days ago are forgotten (they must enroll anew).' },
  { key: 'artifactRetentionDays', env: 'PICKET_ARTIFACT_RETENTION_DAYS', flag: '--artifact-retention-days <days>', default: '30', description: 'Days an artifact is kept when its upload sets no lc-retention-days.' },
  { key: 'artifactPurgeIntervalS', env: 'PICKET_ARTIFACT_PURGE_INTERVAL', flag: '--artifact-purge-interval <seconds>', default: '3600', description: 'How often artifacts past their retention are deleted (store and disk).' },
  { key: 'artifactMaxBytes', env: 'PICKET_ARTIFACT_MAX_BYTES', flag: '--artifact-max-bytes <bytes>', default: '1073741824', description: 'Largest artifact accepted by POST /ingest, all parts together.' },
  { key: 'sqliteSync', env: 'PICKET_SQLITE_SYNC', flag: '--sqlite-sync <mode>', default: 'full', description: '"full": fsync every commit (an ACK survives power loss); "normal": survives a process crash only.' },
  { key: 'sqliteAppendThread', env: 'PICKET_SQLITE_APPEND_THREAD', flag: '--sqlite-append-thread <on|off>', default: 'on', description: '"on": the embedded store commits events on a thread of its own, so the event loop keeps serving sensors during inserts and fsyncs; "off": on the event loop (for comparison).' },
  { key: 'writeCredentialsFile', env: 'PICKET_CREDENTIALS_FILE', flag: '--no-credentials-file', default: 'true', description: 'On first start, write the admin API key and installation key to <data>/credentials.json (mode 0600).' },
  { key: 'logLevel', env: 'PICKET_LOG_LEVEL', flag: '--log-level <level>', default: 'info', description: 'pino log level (trace, debug, info, warn, error).' },
];

/** undefined or "sqlite" (embedded) stay undefined; a postgres URL is kept; anything else is an error. */
function parseStoreUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '' || raw === 'sqlite') return undefined;
  if (!/^postgres(ql)?:\/\//.test(raw)) throw new Error(`PICKET_STORE must be a postgres:// URL (or empty for the embedded store), got "${raw.replace(/\/\/[^@/]*@/, '//***@')}"`);
  return raw;
}

/** undefined or empty: no cluster; otherwise one or more nats:// (or tls://) server URLs. */
function parseBusUrl(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  for (const server of raw.split(',')) {
    if (!/^(nats|tls):\/\/[^\s]+$/.test(server.trim())) throw new Error(`PICKET_BUS must be nats://host:port (comma-separated for several servers), got "${server.replace(/\/\/[^@/]*@/, '//***@')}"`);
  }
  return raw;
}

function parseNodeId(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new Error(`PICKET_NODE_ID may hold letters, digits, "-" and "_" (at most 64), got "${raw}"`);
  return raw;
}

function num(name: string, raw: string | undefined, fallback: number, min = 0): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return n;
}

/** Builds the configuration from environment variables, then explicit overrides (CLI flags). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<keyof ServerConfig, string | boolean | undefined>> = {}): ServerConfig {
  const pick = (key: keyof ServerConfig, envName: string): string | undefined => {
    const o = overrides[key];
    if (o !== undefined) return String(o);
    return env[envName];
  };
  const sync = pick('sqliteSync', 'PICKET_SQLITE_SYNC') ?? 'full';
  if (sync !== 'full' && sync !== 'normal') throw new Error(`PICKET_SQLITE_SYNC must be "full" or "normal", got "${sync}"`);
  const appendThread = pick('sqliteAppendThread', 'PICKET_SQLITE_APPEND_THREAD') ?? 'on';
  if (appendThread !== 'on' && appendThread !== 'off') throw new Error(`PICKET_SQLITE_APPEND_THREAD must be "on" or "off", got "${appendThread}"`);
  const overflow = pick('outputOverflow', 'PICKET_OUTPUT_OVERFLOW') ?? 'keep';
  if (overflow !== 'keep' && overflow !== 'drop_oldest') throw new Error(`PICKET_OUTPUT_OVERFLOW must be "keep" or "drop_oldest", got "${overflow}"`);
  const creds = pick('writeCredentialsFile', 'PICKET_CREDENTIALS_FILE');
  const tlsCert = pick('tlsCert', 'PICKET_TLS_CERT') || undefined;
  const tlsKey = pick('tlsKey', 'PICKET_TLS_KEY') || undefined;
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new Error('TLS needs both a certificate (PICKET_TLS_CERT) and a key (PICKET_TLS_KEY)');
  const config: ServerConfig = {
    dataDir: path.resolve(pick('dataDir', 'PICKET_DATA_DIR') || './data'),
    store: parseStoreUrl(pick('store', 'PICKET_STORE')),
    bus: parseBusUrl(pick('bus', 'PICKET_BUS')),
    nodeId: parseNodeId(pick('nodeId', 'PICKET_NODE_ID')),
    clusterNodeTimeoutS: num('PICKET_CLUSTER_NODE_TIMEOUT', pick('clusterNodeTimeoutS', 'PICKET_CLUSTER_NODE_TIMEOUT'), 10, 1),
    busRetentionH: num('PICKET_BUS_RETENTION_H', pick('busRetentionH', 'PICKET_BUS_RETENTION_H'), 168, 1),
    host: pick('host', 'PICKET_HOST') ?? '127.0.0.1',
    port: num('PICKET_PORT', pick('port', 'PICKET_PORT'), 4830),
    publicUrl: pick('publicUrl', 'PICKET_PUBLIC_URL') || undefined,
    tlsCert,
    tlsKey,
    syncIntervalS: num('PICKET_SYNC_INTERVAL', pick('syncIntervalS', 'PICKET_SYNC_INTERVAL'), 600, 1),
    pingIntervalS: num('PICKET_PING_INTERVAL', pick('pingIntervalS', 'PICKET_PING_INTERVAL'), 20, 0.05),
    livenessTimeoutS: num('PICKET_LIVENESS_TIMEOUT', pick('livenessTimeoutS', 'PICKET_LIVENESS_TIMEOUT'), 60, 0.1),
    helloTimeoutS: num('PICKET_HELLO_TIMEOUT', pick('helloTimeoutS', 'PICKET_HELLO_TIMEOUT'), 10, 0.1),
    maxFrameBytes: num('PICKET_MAX_FRAME_BYTES', pick('maxFrameBytes', 'PICKET_MAX_FRAME_BYTES'), 1_048_576, 1024),
    maxBatchEvents: num('PICKET_MAX_BATCH_EVENTS', pick('maxBatchEvents', 'PICKET_MAX_BATCH_EVENTS'), 5000, 1),
    maxInflightBatches: num('PICKET_MAX_INFLIGHT_BATCHES', pick('maxInflightBatches', 'PICKET_MAX_INFLIGHT_BATCHES'), 32, 1),
    commitMaxEvents: num('PICKET_COMMIT_MAX_EVENTS', pick('commitMaxEvents', 'PICKET_COMMIT_MAX_EVENTS'), 20000, 1),
    uspWindow: num('PICKET_USP_WINDOW', pick('uspWindow', 'PICKET_USP_WINDOW'), 1024, 1),
    backoffQueueEvents: num('PICKET_BACKOFF_QUEUE_EVENTS', pick('backoffQueueEvents', 'PICKET_BACKOFF_QUEUE_EVENTS'), 200_000, 1),
    backoffLatencyMs: num('PICKET_BACKOFF_LATENCY_MS', pick('backoffLatencyMs', 'PICKET_BACKOFF_LATENCY_MS'), 2000, 1),
    backoffSeconds: num('PICKET_BACKOFF_SECONDS', pick('backoffSeconds', 'PICKET_BACKOFF_SECONDS'), 5, 1),
    orgEpsLimit: num('PICKET_ORG_EPS_LIMIT', pick('orgEpsLimit', 'PICKET_ORG_EPS_LIMIT'), 0, 0),
    outputRetryBaseS: num('PICKET_OUTPUT_RETRY_BASE', pick('outputRetryBaseS', 'PICKET_OUTPUT_RETRY_BASE'), 1, 0.01),
    outputRetryCapS: num('PICKET_OUTPUT_RETRY_CAP', pick('outputRetryCapS', 'PICKET_OUTPUT_RETRY_CAP'), 60, 0.01),
    outputPauseAfter: num('PICKET_OUTPUT_PAUSE_AFTER', pick('outputPauseAfter', 'PICKET_OUTPUT_PAUSE_AFTER'), 10, 1),
    outputPauseS: num('PICKET_OUTPUT_PAUSE', pick('outputPauseS', 'PICKET_OUTPUT_PAUSE'), 300, 0.01),
    outputQueueLimit: num('PICKET_OUTPUT_QUEUE_LIMIT', pick('outputQueueLimit', 'PICKET_OUTPUT_QUEUE_LIMIT'), 1_000_000, 1),
    outputOverflow: overflow,
    cloudAdapterGraceS: num('PICKET_CLOUD_ADAPTER_GRACE', pick('cloudAdapterGraceS', 'PICKET_CLOUD_ADAPTER_GRACE'), 3600, 0.01),
    cloudAdapterRetryBaseS: num('PICKET_CLOUD_ADAPTER_RETRY_BASE', pick('cloudAdapterRetryBaseS', 'PICKET_CLOUD_ADAPTER_RETRY_BASE'), 1, 0.01),
    cloudAdapterRetryCapS: num('PICKET_CLOUD_ADAPTER_RETRY_CAP', pick('cloudAdapterRetryCapS', 'PICKET_CLOUD_ADAPTER_RETRY_CAP'), 300, 0.01),
    liveKeepaliveS: num('PICKET_LIVE_KEEPALIVE', pick('liveKeepaliveS', 'PICKET_LIVE_KEEPALIVE'), 60, 0.05),
    aliveFlushMs: num('PICKET_ALIVE_FLUSH_MS', pick('aliveFlushMs', 'PICKET_ALIVE_FLUSH_MS'), 5000, 10),
    billingPeriodS: num('PICKET_BILLING_PERIOD', pick('billingPeriodS', 'PICKET_BILLING_PERIOD'), 3600, 60),
    usageFlushMs: num('PICKET_USAGE_FLUSH_MS', pick('usageFlushMs', 'PICKET_USAGE_FLUSH_MS'), 10000, 10),
    refusalRetryBaseS: num('PICKET_REFUSAL_RETRY_BASE', pick('refusalRetryBaseS', 'PICKET_REFUSAL_RETRY_BASE'), 30, 0.01),
    refusalRetryCapS: num('PICKET_REFUSAL_RETRY_CAP', pick('refusalRetryCapS', 'PICKET_REFUSAL_RETRY_CAP'), 1800, 0.01),
    purgeIntervalS: num('PICKET_PURGE_INTERVAL', pick('purgeIntervalS', 'PICKET_PURGE_INTERVAL'), 3600, 1),
    artifactRetentionDays: num('PICKET_ARTIFACT_RETENTION_DAYS', pick('artifactRetentionDays', 'PICKET_ARTIFACT_RETENTION_DAYS'), 30, 1),
    artifactPurgeIntervalS: num('PICKET_ARTIFACT_PURGE_INTERVAL', pick('artifactPurgeIntervalS', 'PICKET_ARTIFACT_PURGE_INTERVAL'), 3600, 1),
    artifactMaxBytes: num('PICKET_ARTIFACT_MAX_BYTES', pick('artifactMaxBytes', 'PICKET_ARTIFACT_MAX_BYTES'), 1_073_741_824, 1),
    sqliteSync: sync,
    sqliteAppendThread: appendThread === 'on',
    writeCredentialsFile: creds === undefined ? true : !['false', '0', 'no'].includes(String(creds).toLowerCase()),
    logLevel: pick('logLevel', 'PICKET_LOG_LEVEL') ?? 'info',
  };
  if (config.refusalRetryCapS < config.refusalRetryBaseS) {
    throw new Error('PICKET_REFUSAL_RETRY_CAP must not be below PICKET_REFUSAL_RETRY_BASE');
  }
  if (config.livenessTimeoutS <= config.pingIntervalS) {
    throw new Error('PICKET_LIVENESS_TIMEOUT must be longer than PICKET_PING_INTERVAL');
  }
  return config;
}
