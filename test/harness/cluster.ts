// A Picket cluster for end-to-end tests: several real `picket serve` processes on loopback ports sharing
// one schema of the local PostgreSQL and the local NATS JetStream, a TCP load balancer in front of them
// (round robin over the nodes that accept connections, as a real one with health checks would), and a
// cleanup that drops the schema and the cluster's JetStream stream. Tests using it skip with a message
// when PostgreSQL or NATS is missing, except with CI=true.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'nats';
import type { BootstrapCredentials } from '../../src/services/bootstrap.js';
import { clusterNames } from '../../src/cluster/cluster-names.js';
import { postgresAvailable, freshSchemaName, storeUrl, dropSchema } from './postgres.js';
import { assertBuilt, CLI, freePort, ManagedProcess } from './processes.js';
import { waitFor } from './wait.js';

export const NATS_URL = process.env.PICKET_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

async function natsProblem(): Promise<string | null> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 2000 });
    try {
      await (await nc.jetstreamManager()).getAccountInfo();
    } finally {
      await nc.close();
    }
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why NATS JetStream cannot be used here (null: it can). */
export const natsIssue = await natsProblem();
/** Why the cluster tests cannot run here (undefined: they can); never skipped with CI=true. */
export const clusterUnavailable: string | undefined = !postgresAvailable ? 'PostgreSQL is not reachable' : natsIssue !== null ? `NATS JetStream is not reachable at ${NATS_URL} (${natsIssue})` : undefined;
if (clusterUnavailable && process.env.CI === 'true') throw new Error(`cluster tests cannot run: ${clusterUnavailable}; CI must provide PostgreSQL and NATS JetStream`);
if (clusterUnavailable) console.warn(`skipping the cluster tests: ${clusterUnavailable}`);

export interface NodeProcess extends ManagedProcess {
  nodeId: string;
  url: string;
  port: number;
  dataDir: string;
}

export class TestCluster {
  readonly nodes = new Map<string, NodeProcess>();
  readonly schema = freshSchemaName('cluster');
  /** Holds the debug clock offset (ms) every node adds to its clock (PICKET_DEBUG_CLOCK_FILE). */
  readonly clockFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'picket-clock-')), 'offset');
  credentials!: BootstrapCredentials;
  private readonly env: Record<string, string>;

  constructor(env: Record<string, string> = {}) {
    this.env = env;
    writeFileSync(this.clockFile, '0');
  }

  setClockOffset(ms: number): void {
    writeFileSync(this.clockFile, String(Math.round(ms)));
  }

  /** `options.dataDir`: a data directory of the caller's (another node's, for a shared one); default: a new one. */
  async start(nodeId: string, extraEnv: Record<string, string> = {}, options: { dataDir?: string } = {}): Promise<NodeProcess> {
    assertBuilt();
    const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), `picket-${nodeId}-`));
    const port = await freePort();
    const proc = spawn(process.execPath, [CLI, 'serve', '--data', dataDir, '--port', String(port), '--host', '127.0.0.1', '--store', storeUrl(this.schema), '--bus', NATS_URL, '--node-id', nodeId], {
      env: {
        ...process.env, PICKET_PING_INTERVAL: '0.5', PICKET_LIVENESS_TIMEOUT: '3', PICKET_ALIVE_FLUSH_MS: '200', PICKET_CLUSTER_NODE_TIMEOUT: '3',
        PICKET_DEBUG_CLOCK_FILE: this.clockFile, ...this.env, ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const node = new ManagedProcess(proc) as NodeProcess;
    await waitFor(() => node.logs().some((l) => l.msg === 'picket ready') || !node.running, { timeoutMs: 30_000, message: `node ${nodeId} to be ready` });
    if (!node.running) throw new Error(`node ${nodeId} exited during start\n${node.output()}`);
    node.nodeId = nodeId;
    node.url = String(node.logs().find((l) => l.msg === 'picket ready')!.url);
    node.port = port;
    node.dataDir = dataDir;
    const credentialsFile = path.join(dataDir, 'credentials.json');
    if (!this.credentials && existsSync(credentialsFile)) this.credentials = JSON.parse(readFileSync(credentialsFile, 'utf8')) as BootstrapCredentials;
    this.nodes.set(nodeId, node);
    return node;
  }

  node(id: string): NodeProcess {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The node currently leading (from its logs). */
  leader(): NodeProcess | undefined {
    return [...this.nodes.values()].find((n) => n.running && lastLeadership(n) === 'leader');
  }

  async api<T = unknown>(nodeId: string, method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.node(nodeId).url}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${this.credentials.api_key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) n.kill('SIGTERM');
    await Promise.all([...this.nodes.values()].map((n) => Promise.race([n.exited, new Promise((r) => setTimeout(r, 15_000))])));
    for (const n of this.nodes.values()) n.kill('SIGKILL');
    await dropSchema(this.schema).catch(() => undefined);
    const nc = await connect({ servers: NATS_URL }).catch(() => null);
    if (nc) {
      await (await nc.jetstreamManager()).streams.delete(clusterNames(this.schema).stream).catch(() => undefined);
      await nc.close();
    }
  }
}

function lastLeadership(n: ManagedProcess): 'leader' | 'follower' | undefined {
  let state: 'leader' | 'follower' | undefined;
  for (const l of n.logs()) {
    if (l.msg === 'this node is the cluster leader') state = 'leader';
    else if (l.msg === 'this node is no longer the cluster leader') state = 'follower';
  }
  return state;
}

/**
 * A TCP load balancer on a loopback port: each connection goes to the next backend in turn; a backend
 * that refuses (a dead node) is skipped, as a balancer with health checks does.
 */
export class TcpBalancer {
  private readonly server: net.Server;
  private next = 0;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly backends: () => number[]) {
    this.server = net.createServer((client) => this.route(client, 0));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  private route(client: net.Socket, attempt: number): void {
    const ports = this.backends();
    if (ports.length === 0 || attempt >= ports.length) {
      client.destroy();
      return;
    }
    const port = ports[this.next++ % ports.length]!;
    client.pause();
    const upstream = net.connect(port, '127.0.0.1');
    upstream.once('error', () => {
      if (!upstream.readyState.includes('open') && !client.destroyed) this.route(client, attempt + 1);
    });
    upstream.once('connect', () => {
      this.sockets.add(client).add(upstream);
      upstream.removeAllListeners('error');
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
