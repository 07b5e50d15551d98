// Starts a real Picket server in the test process: a free port, a temporary data directory, real SQLite.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ServerConfig } from '../../src/config.js';
import { silentLogger, type Logger } from '../../src/observability/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import type { BootstrapCredentials } from '../../src/services/bootstrap.js';

export interface TestServer {
  url: string;
  port: number;
  oid: string;
  apiKey: string;
  installationKey: string;
  dataDir: string;
  server: RunningServer;
  /** Stops the server; removes the data directory unless it was given by the caller or keepData is set. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export function testConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  return {
    dataDir: overrides.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'picket-test-')),
    store: undefined,
    bus: undefined,
    nodeId: undefined,
    clusterNodeTimeoutS: 10,
    busRetentionH: 168,
    host: '127.0.0.1',
    port: 0,
    publicUrl: undefined,
    tlsCert: undefined,
    tlsKey: undefined,
    syncIntervalS: 600,
    pingIntervalS: 0.5,
    livenessTimeoutS: 3,
    helloTimeoutS: 5,
    maxFrameBytes: 1_048_576,
    maxBatchEvents: 5000,
    maxInflightBatches: 32,
    commitMaxEvents: 20_000,
    uspWindow: 1024,
    backoffQueueEvents: 200_000,
    backoffLatencyMs: 2000,
    backoffSeconds: 5,
    orgEpsLimit: 0,
    outputRetryBaseS: 0.05,
    outputRetryCapS: 0.5,
    outputPauseAfter: 1000,
    outputPauseS: 5,
    outputQueueLimit: 1_000_000,
    outputOverflow: 'keep',
    cloudAdapterGraceS: 3600,
    cloudAdapterRetryBaseS: 0.05,
    cloudAdapterRetryCapS: 0.5,
    liveKeepaliveS: 60,
    aliveFlushMs: 200,
    billingPeriodS: 3600,
    usageFlushMs: 200,
    refusalRetryBaseS: 0.2,
    refusalRetryCapS: 2,
    purgeIntervalS: 3600,
    artifactRetentionDays: 30,
    artifactPurgeIntervalS: 3600,
    artifactMaxBytes: 1_073_741_824,
    sqliteSync: 'normal',
    sqliteAppendThread: true,
    writeCredentialsFile: true,
    logLevel: 'silent',
    ...overrides,
  };
}

/**
 * PICKET_TEST_STORE=postgres runs every in-process test server on the PostgreSQL of this machine: each data
 * directory gets its own schema (named after it, so a restart on the same directory finds its data again),
 * dropped with the directory.
 */
const onPostgres = process.env.PICKET_TEST_STORE === 'postgres';


export async function startTestServer(overrides: Partial<ServerConfig> = {}, options: { logger?: Logger; now?: () => number } = {}): Promise<TestServer> {
  const ownsDir = overrides.dataDir === undefined;
  const config = testConfig(overrides);
  if (onPostgres && overrides.store === undefined) {
    const { storeUrl, schemaForDataDir } = await import('./postgres.js');
    config.store = storeUrl(schemaForDataDir(config.dataDir));
  }
  const server = await startServer(config, { logger: options.logger ?? silentLogger(), now: options.now });
  const creds: BootstrapCredentials = server.bootstrap ?? (JSON.parse(readFileSync(path.join(config.dataDir, 'credentials.json'), 'utf8')) as BootstrapCredentials);
  return {
    url: server.url,
    port: server.port,
    oid: creds.oid,
    apiKey: creds.api_key,
    installationKey: creds.installation_key,
    dataDir: config.dataDir,
    server,
    async close(opts = {}) {
      await server.close();
      if (ownsDir && !opts.keepData) {
        rmSync(config.dataDir, { recursive: true, force: true });
        if (onPostgres && overrides.store === undefined) {
          const { dropSchema, schemaForDataDir } = await import('./postgres.js');
          await dropSchema(schemaForDataDir(config.dataDir));
        }
      }
    },
  };
}

/** A small authenticated JSON client for the REST API. */
export function apiClient(url: string, apiKey: string) {
  return async function api<T = unknown>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${url}${route}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
}
