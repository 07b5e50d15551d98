// The USP v2 client of `picket adapter` (docs/usp.md): one WebSocket to /usp at a time, the JSON connection
// header, then the buffered messages as msgpack (gzip when compressed) binary frames with their sequence
// numbers, at most `window` unacknowledged in flight. An ack is requested on every message whose x is a
// multiple of half the window and on the last message sent when there is nothing more to send (so a
// trickle of lines is acknowledged too). Cumulative acks release messages from the buffer; `bo` pauses
// sending; `re` and lost connections reconnect (exponential backoff with full jitter) and resend every
// unacknowledged message, oldest first, with its original x.
//
// A message the cloud refuses closes the connection (4000 / 1009) and would be refused on every resend,
// so after such a close the messages of that connection are resent one at a time; the one that closes the
// connection again is dropped, logged and counted, and everything else is delivered.
import tls from 'node:tls';
import { gzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import type { Logger } from '../observability/logger.js';
import { CloseCode } from '../protocol/close-codes.js';
import { ReconnectPolicy, parseRetryAfterMs } from '../sensor/reconnect-policy.js';
import type { BufferedMessage } from './disk-buffer.js';
import type { UspConnectionHeader } from './usp-header.js';

/** What the client needs of the disk buffer. */
export interface OutboundQueue {
  readonly size: number;
  readonly firstX: number | undefined;
  nextAfter(x: number): BufferedMessage | undefined;
  countThrough(x: number): number;
  release(x: number): number;
  discardOldest(): BufferedMessage | undefined;
  onAvailable(listener: () => void): () => void;
}

export interface UspClientOptions {
  /** ws(s)://host:port/usp */
  url: string;
  header: UspConnectionHeader;
  queue: OutboundQueue;
  logger: Logger;
  /** Reconnect waits: full jitter below min(capMs, baseMs · 2^attempt). */
  reconnect?: { baseMs: number; capMs: number };
  /** A connection without `rd` this long after it was opened is dropped. */
  readyTimeoutMs?: number;
  /** A connection silent this long (no frame, no ping) is dropped; 0 = never. */
  livenessTimeoutMs?: number;
  /** Wait between attempts while the adapter is deleted in the cloud (4011). */
  deniedRetryMs?: number;
  /** Extra CA certificate (PEM) trusted for wss, besides the system ones. */
  ca?: Buffer;
  random?: () => number;
}

/** The cloud refuses this adapter for good (bad key, bad header): retrying cannot help. */
export class UspFatalError extends Error {
  override readonly name = 'UspFatalError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface UspClientStats {
  connections: number;
  /** Messages sent for the first time. */
  sent: number;
  /** Messages sent again after a reconnect. */
  resent: number;
  /** Highest x acknowledged. */
  ackedThrough: number;
  /** Messages the cloud refused, dropped. */
  rejected: number;
  backoffs: number;
}

type Control = { v?: unknown; x?: unknown; dur?: unknown; win?: unknown; err?: unknown };

const DEFAULT_RECONNECT = { baseMs: 500, capMs: 30_000 };
/** How long the server has to close after `re` before the client closes itself. */
const RECONNECT_CLOSE_GRACE_MS = 2000;

export class UspClient {
  readonly stats: UspClientStats = { connections: 0, sent: 0, resent: 0, ackedThrough: 0, rejected: 0, backoffs: 0 };
  /** Resolves (never rejects) if the cloud refuses the adapter for good; the client has stopped then. */
  readonly fatal: Promise<UspFatalError>;
  private resolveFatal!: (err: UspFatalError) => void;
  private readonly log: Logger;
  private readonly policy: ReconnectPolicy;
  private readonly random: () => number;
  private readonly packr = new Packr({ useRecords: false });
  private readonly compressed: boolean;
  private ws: WebSocket | null = null;
  private ready = false;
  private window = 1;
  /** Highest x sent on the current connection. */
  private sentThrough = 0;
  /** Highest x ever sent, to tell resends from first sends. */
  private highestSent = 0;
  private connectedAt = 0;
  private lastHeard = 0;
  private pausedUntil = 0;
  private serverError: string | undefined;
  private socketError: string | undefined;
  private reconnectRequested = false;
  /** Highest x sent on a connection the cloud closed over a refused message: up to it, one at a time. */
  private suspectThrough: number | null = null;
  /** The one message in flight while sending one at a time. */
  private isolatedX: number | undefined;
  private stopped = false;
  private flushQueued = false;
  private closedWaiters: Array<() => void> = [];
  private readyTimer: NodeJS.Timeout | null = null;
  private livenessTimer: NodeJS.Timeout | null = null;
  private pauseTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: UspClientOptions) {
    this.log = options.logger;
    this.random = options.random ?? Math.random;
    this.policy = new ReconnectPolicy({ ...(options.reconnect ?? DEFAULT_RECONNECT), random: this.random });
    this.compressed = options.header.is_compressed;
    this.fatal = new Promise((resolve) => (this.resolveFatal = resolve));
    this.unsubscribe = options.queue.onAvailable(() => this.scheduleFlush());
  }

  /** Connects, and keeps connecting, until stop() or a fatal refusal. */
  start(): void {
    this.connect();
  }

  /** True while a connection is ready (`rd` received). */
  get isReady(): boolean {
    return this.ready;
  }

  /** The flow-control window of the current connection. */
  get currentWindow(): number {
    return this.window;
  }

  /** Closes the connection (1000) and stops reconnecting; buffered messages stay in the queue. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    this.clearTimer('reconnectTimer');
    this.clearTimer('pauseTimer');
    const ws = this.ws;
    if (!ws) return;
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(CloseCode.normal, 'adapter stopping');
    const force = setTimeout(() => ws.terminate(), 2000);
    await closed;
    clearTimeout(force);
  }

  // ---- connection ----

  private connect(): void {
    this.reconnectTimer = null;
    if (this.stopped) return;
    this.ready = false;
    this.window = 1;
    this.sentThrough = 0;
    this.isolatedX = undefined;
    this.serverError = undefined;
    this.socketError = undefined;
    this.reconnectRequested = false;
    const readyTimeoutMs = this.options.readyTimeoutMs ?? 30_000;
    const ws = new WebSocket(this.options.url, {
      perMessageDeflate: false,
      handshakeTimeout: readyTimeoutMs,
      maxPayload: 1024 * 1024,
      // `ca` replaces the trusted roots, so an extra CA is added to them rather than given alone.
      ...(this.options.ca ? { ca: [...tls.rootCertificates, this.options.ca.toString()] } : {}),
    });
    this.ws = ws;
    ws.on('open', () => {
      this.lastHeard = Date.now();
      ws.send(JSON.stringify(this.options.header));
      this.startLiveness(ws);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      if (isBinary) return this.log.debug('binary frame from the cloud ignored');
      this.onControl(ws, data.toString('utf8'));
    });
    ws.on('ping', () => (this.lastHeard = Date.now()));
    ws.on('pong', () => (this.lastHeard = Date.now()));
    ws.on('error', (err) => {
      this.socketError ??= err.message;
      this.log.debug({ err: err.message }, 'USP socket error');
    });
    ws.on('close', (code: number, reason: Buffer) => this.onClose(ws, code, reason.toString('utf8')));
    this.readyTimer = setTimeout(() => {
      this.log.warn({ timeout_ms: readyTimeoutMs }, 'no ready (rd) from the cloud in time; dropping the connection');
      ws.terminate();
    }, readyTimeoutMs);
  }

  private startLiveness(ws: WebSocket): void {
    const timeout = this.options.livenessTimeoutMs ?? 90_000;
    if (timeout <= 0) return;
    this.livenessTimer = setInterval(() => {
      if (Date.now() - this.lastHeard <= timeout) return;
      this.log.warn({ silent_ms: Date.now() - this.lastHeard }, 'nothing heard from the cloud; dropping the connection');
      ws.terminate();
    }, Math.max(250, Math.floor(timeout / 4)));
  }

  private onControl(ws: WebSocket, text: string): void {
    let m: Control;
    try {
      m = JSON.parse(text) as Control;
    } catch {
      this.log.debug({ frame: text.slice(0, 200) }, 'control frame is not JSON; ignored');
      return;
    }
    if (typeof m !== 'object' || m === null) return;
    switch (m.v) {
      case 'rd':
        this.onReady();
        break;
      case 'fl':
        if (Number.isSafeInteger(m.win) && (m.win as number) > 0) {
          this.window = m.win as number;
          this.log.debug({ window: this.window }, 'flow-control window');
          this.scheduleFlush();
        }
        break;
      case 'ack':
        if (Number.isSafeInteger(m.x)) this.onAck(m.x as number);
        break;
      case 'bo':
        if (typeof m.dur === 'number' && m.dur >= 0) this.onBackoff(m.dur);
        break;
      case 're':
        this.reconnectRequested = true;
        this.log.info('the cloud asks for a reconnect');
        setTimeout(() => {
          if (this.ws === ws) ws.close(CloseCode.normal, 'reconnecting as asked');
        }, RECONNECT_CLOSE_GRACE_MS).unref();
        break;
      case 'error':
        this.serverError = typeof m.err === 'string' ? m.err : JSON.stringify(m.err);
        this.log.warn({ err: this.serverError }, 'the cloud reports an error');
        break;
      default:
        // Unknown verbs are ignored (docs/usp.md §4).
        this.log.debug({ v: m.v }, 'unknown control message ignored');
    }
  }

  private onReady(): void {
    if (this.ready) return;
    this.clearTimer('readyTimer');
    this.ready = true;
    this.connectedAt = Date.now();
    this.stats.connections++;
    this.log.info({ url: this.options.url, instance_id: this.options.header.instance_id, unacknowledged: this.options.queue.size }, 'connected to the cloud');
    // On the next tick: the window (fl) normally arrives right behind rd.
    this.scheduleFlush();
  }

  private onAck(x: number): void {
    const released = this.options.queue.release(x);
    if (x > this.stats.ackedThrough) this.stats.ackedThrough = x;
    if (this.isolatedX !== undefined && x >= this.isolatedX) this.isolatedX = undefined;
    this.policy.reset();
    this.log.trace({ x, released }, 'ack');
    this.scheduleFlush();
  }

  private onBackoff(seconds: number): void {
    this.stats.backoffs++;
    // A newer bo replaces a pending one.
    this.pausedUntil = Date.now() + seconds * 1000;
    this.clearTimer('pauseTimer');
    this.log.warn({ seconds }, 'the cloud asks to back off (bo): pausing sending');
    this.armPauseTimer();
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.clearTimer('readyTimer');
    this.clearTimer('livenessTimer');
    this.clearTimer('pauseTimer');
    const wasReady = this.ready;
    this.ready = false;
    const uptimeMs = wasReady ? Date.now() - this.connectedAt : 0;
    const why = this.serverError ?? (reason || this.socketError || '');
    for (const resolve of this.closedWaiters.splice(0)) resolve();
    if (this.stopped) return;

    if (code === CloseCode.unauthorized || code === CloseCode.unsupportedVersion || (!wasReady && code === CloseCode.badMessage)) {
      const err = new UspFatalError(code, `the cloud refused the adapter (${code}${why ? `: ${why}` : ''})`);
      this.log.error({ code, err: why }, 'the cloud refused the adapter; not retrying');
      this.stopped = true;
      this.unsubscribe();
      this.resolveFatal(err);
      return;
    }

    let delayMs: number;
    if (wasReady && (code === CloseCode.badMessage || code === CloseCode.tooBig)) {
      delayMs = this.onRefusedMessage(code, why);
    } else if (this.reconnectRequested || code === CloseCode.serviceRestart) {
      this.policy.reset();
      delayMs = 100 + Math.floor(this.random() * 900);
    } else if (code === CloseCode.deleted) {
      delayMs = (this.options.deniedRetryMs ?? 300_000) + Math.floor(this.random() * 1000);
      this.log.warn({ retry_in_ms: delayMs }, 'this adapter is deleted in the cloud; an operator must undelete it');
    } else {
      this.policy.sessionEnded(uptimeMs);
      delayMs = this.policy.nextDelayMs(parseRetryAfterMs(why));
    }
    this.log[wasReady ? 'warn' : 'info']({ code, reason: why || undefined, was_ready: wasReady, retry_in_ms: delayMs, unacknowledged: this.options.queue.size }, 'connection to the cloud closed; reconnecting');
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** The cloud closed the connection over a message it refuses; returns the wait before reconnecting. */
  private onRefusedMessage(code: number, why: string): number {
    const queue = this.options.queue;
    if (this.isolatedX !== undefined && queue.firstX === this.isolatedX) {
      const m = queue.discardOldest()!;
      this.stats.rejected++;
      this.log.error({ x: m.x, code, err: why, message: preview(m) }, 'the cloud refuses this message; dropped (it would be refused on every resend)');
      this.policy.reset();
      return 100 + Math.floor(this.random() * 400);
    }
    if (this.sentThrough > 0) {
      this.suspectThrough = Math.max(this.suspectThrough ?? 0, this.sentThrough);
      this.log.warn({ code, err: why, through_x: this.suspectThrough }, 'the cloud closed the connection over a message it refuses; resending one at a time to find it');
    }
    return this.policy.nextDelayMs();
  }

  // ---- sending ----

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    const ws = this.ws;
    if (!this.ready || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() < this.pausedUntil) return this.armPauseTimer();
    const queue = this.options.queue;
    if (this.suspectThrough !== null) {
      const first = queue.firstX;
      if (first === undefined || first > this.suspectThrough) {
        this.log.info('past the messages of the refused connection; sending at full speed again');
        this.suspectThrough = null;
      }
    }
    const isolating = this.suspectThrough !== null;
    const limit = isolating ? 1 : this.window;
    const ackEvery = Math.max(1, Math.floor(this.window / 2));
    let inflight = queue.countThrough(this.sentThrough);
    while (inflight < limit) {
      const m = queue.nextAfter(this.sentThrough);
      if (!m) break;
      inflight++;
      // Ask at every half window, and on the last message for now, so nothing waits for a later one.
      const ask = isolating || m.x % ackEvery === 0 || inflight >= limit || queue.nextAfter(m.x) === undefined;
      ws.send(this.encode(m, ask));
      if (m.x > this.highestSent) {
        this.highestSent = m.x;
        this.stats.sent++;
      } else {
        this.stats.resent++;
      }
      this.sentThrough = m.x;
      if (isolating) this.isolatedX = m.x;
    }
  }

  private encode(m: BufferedMessage, ask: boolean): Buffer {
    const body = this.packr.pack(ask ? { x: m.x, a: true, ...m.fields } : { x: m.x, ...m.fields });
    return this.compressed ? gzipSync(body) : body;
  }

  private armPauseTimer(): void {
    if (this.pauseTimer) return;
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = null;
      this.flush();
    }, Math.max(0, this.pausedUntil - Date.now()));
  }

  private clearTimer(name: 'readyTimer' | 'livenessTimer' | 'pauseTimer' | 'reconnectTimer'): void {
    const timer = this[name];
    if (timer) {
      clearTimeout(timer);
      this[name] = null;
    }
  }
}

function preview(m: BufferedMessage): string {
  const f = m.fields;
  const text = f.t ?? (f.j !== undefined ? JSON.stringify(f.j) : f.b !== undefined ? `<${f.b.length} bytes>` : '');
  return `${f.e !== undefined ? `[${f.e}] ` : ''}${text.slice(0, 300)}`;
}
