// The sensor gateway: accepts WebSocket upgrades on /sensor (protocol v1) and /usp (USP v2 adapters),
// runs one SensorSession per connection with the wire of its path, and sweeps all sessions for liveness
// with a single timer (pings out, silent sessions closed).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode } from '../../protocol/close-codes.js';
import { GATEWAY_PATH } from '../../protocol/messages.js';
import { USP_PATH, UspWire } from '../usp/usp-wire.js';
import type { GatewayContext } from './gateway-context.js';
import { SensorSession } from './sensor-session.js';
import { SensorWire } from './sensor-wire.js';
import type { SessionWire } from './session-wire.js';

export type GatewayDeps = Omit<GatewayContext, 'trackCommit' | 'commitsOf'>;

/** Largest frame the WebSocket layer reads: twice the protocol limit, and at least 64 KiB above it. */
export function wireFrameLimit(maxFrameBytes: number): number {
  return Math.max(2 * maxFrameBytes, maxFrameBytes + 64 * 1024);
}

export class SensorGateway {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<SensorSession>();
  private readonly pendingCommits = new Map<string, Promise<void>>();
  private readonly ctx: GatewayContext;
  private sweepTimer: NodeJS.Timeout | null = null;
  private closing = false;

  constructor(deps: GatewayDeps) {
    this.ctx = {
      ...deps,
      trackCommit: (sid, commit) => this.trackCommit(sid, commit),
      commitsOf: (sid) => this.pendingCommits.get(sid) ?? Promise.resolve(),
    };
    // Frames over maxFrameBytes are refused by the wires with an `error` first; only far larger ones are
    // cut by the WebSocket layer itself (1009, unread).
    this.wss = new WebSocketServer({ noServer: true, maxPayload: wireFrameLimit(deps.config.maxFrameBytes), perMessageDeflate: false, clientTracking: false });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  start(): void {
    this.sweepTimer = setInterval(() => this.sweep(), this.ctx.config.pingIntervalS * 1000);
    this.sweepTimer.unref();
  }

  /** Wire this to the HTTP server's 'upgrade' event. Returns false when the path is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== GATEWAY_PATH && path !== USP_PATH) return false;
    if (this.closing) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, req, path === USP_PATH));
    return true;
  }

  /**
   * A method of its own, not a closure in handleUpgrade: the closure kept until the session closes must not
   * hold the upgrade request (its headers and parser state) for the session's lifetime.
   */
  private open(ws: WebSocket, req: IncomingMessage, usp: boolean): void {
    const wire: SessionWire = usp ? new UspWire(this.ctx.config) : new SensorWire(this.ctx.config);
    const session = new SensorSession(ws, req, this.ctx, wire);
    this.sessions.add(session);
    void session.closed.then(() => this.sessions.delete(session));
  }

  /** Closes every session (sensors see 1001 and reconnect elsewhere or later) and waits for their DISCONNECTED. */
  async close(graceMs = 3000): Promise<void> {
    this.closing = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const all = [...this.sessions];
    for (const s of all) s.requestReconnect(CloseCode.goingAway, 'server shutting down');
    const done = Promise.all(all.map((s) => s.closed));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
    if ((await Promise.race([done, timeout])) === 'timeout') {
      // Sensors that do not finish the close handshake in time are cut off.
      for (const s of this.sessions) s.terminate();
      await done;
    }
    clearTimeout(timer);
    this.wss.close();
  }

  private sweep(): void {
    // Liveness runs on the monotonic clock: wall-clock jumps must not end sessions.
    const now = performance.now();
    for (const s of this.sessions) s.checkLiveness(now);
  }

  private trackCommit(sid: string, commit: Promise<void>): void {
    if (!sid) return;
    const settled = commit.then(
      () => undefined,
      () => undefined,
    );
    const previous = this.pendingCommits.get(sid);
    const chained = previous ? Promise.all([previous, settled]).then(() => undefined) : settled;
    this.pendingCommits.set(sid, chained);
    void chained.then(() => {
      if (this.pendingCommits.get(sid) === chained) this.pendingCommits.delete(sid);
    });
  }
}
