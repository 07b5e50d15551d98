// One WebSocket session of the reference sensor (protocol.md §2–§9): hello, welcome, numbered batches
// with at most N unacknowledged in flight, cumulative acks, control messages, liveness. The session
// ends with a SessionEnd; reconnecting is the caller's job (reference-sensor.ts).
import tls from 'node:tls';
import WebSocket from 'ws';
import type { Logger } from '../observability/logger.js';
import { CloseCode } from '../protocol/close-codes.js';
import { decodeFrame, encodeFrame, type Encoding } from '../protocol/codec.js';
import { GATEWAY_PATH, PROTOCOL_VERSIONS, type CrashReport, type ErrorMessage, type HelloMessage, type HostInfo, type SensorEvent, type ServerMessage, type TaskMessage, type WelcomeMessage } from '../protocol/messages.js';
import { batchEvents, frameBytes, type EventBuffer, type Frame } from './event-buffer.js';

/** Limits that apply until a welcome says otherwise (protocol.md §1, §4). */
export const DEFAULT_MAX_FRAME_BYTES = 1_048_576;
export const DEFAULT_MAX_BATCH_EVENTS = 5000;

export type SensorAuth = { installation_key: string } | { sid: string; secret: string };

export interface ConnectionHandlers {
  /** The welcome arrived. Runs before anything is sent on the session: the identity is stored here. */
  welcome(message: WelcomeMessage): Promise<void>;
  /** A cumulative ack released batches up to `seq`. */
  acked(seq: number): void;
  task(message: TaskMessage): void;
}

export interface SensorConnectionOptions {
  /** Full gateway URL, ws(s)://host:port/sensor. */
  url: string;
  encoding: Encoding;
  auth: SensorAuth;
  host: HostInfo;
  streamId: string;
  /** A crash of the previous process, sent in hello until a welcome arrives. */
  crash?: CrashReport | undefined;
  buffer: EventBuffer;
  logger: Logger;
  handlers: ConnectionHandlers;
  /** Most unacknowledged batches in flight. */
  maxInflightBatches: number;
  /** A connection that has no welcome this long after it was opened is dropped. */
  welcomeTimeoutMs: number;
  /** Extra CA certificate(s) trusted for wss, besides the system ones. */
  ca?: string | Buffer;
}

/** How a session ended. */
export interface SessionEnd {
  /** WebSocket close code (1006 when the connection failed or was cut). */
  code: number;
  reason: string;
  /** The full text of the server's `error` message before the close, if any. */
  errorMessage?: string;
  /** From that `error` message: wait at least this long before trying again (over quota, clone, 1013). */
  retryAfterS?: number;
  /** From that `error` message: the sensor is deleted and refused this long ("720h0m0s"). */
  deniedFor?: string;
  /** From that `error` message: the identity of a sensor enrolled by this hello but refused (over quota). */
  identity?: NonNullable<ErrorMessage['identity']>;
  welcomed: boolean;
  /** How long the session was up after its welcome, ms (0 without welcome). */
  uptimeMs: number;
  /** The cloud ordered a re-enrollment (reenroll message or close 4012). */
  reenroll: boolean;
  /** The sensor itself could not go on (e.g. its identity could not be stored). */
  localError?: Error;
}

type State = 'connecting' | 'hello-sent' | 'welcoming' | 'open' | 'closing' | 'closed';

/** The gateway URL for a cloud URL given as http(s) or ws(s), with or without the /sensor path. */
export function gatewayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid cloud URL "${url}": expected e.g. http://127.0.0.1:4830 or wss://picket.example.com/sensor`);
  }
  const protocols: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const protocol = protocols[u.protocol];
  if (!protocol) throw new Error(`invalid cloud URL "${url}": the scheme must be http, https, ws or wss`);
  const base = u.pathname.replace(/\/+$/, '');
  const pathname = base.endsWith(GATEWAY_PATH) ? base : `${base}${GATEWAY_PATH}`;
  return `${protocol}//${u.host}${pathname}${u.search}`;
}

export class SensorConnection {
  private readonly ws: WebSocket;
  private state: State = 'connecting';
  private readonly ended: Promise<SessionEnd>;
  private resolveEnded!: (end: SessionEnd) => void;
  private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private maxBatchEvents = DEFAULT_MAX_BATCH_EVENTS;
  /** Highest batch seq sent on this session: unacknowledged batches above it are (re)sent first. */
  private sentSeq = 0;
  private welcomedAt = 0;
  private lastReceived = Date.now();
  private livenessTimeoutMs = 0;
  private pausedUntil = 0;
  private pauseTimer: NodeJS.Timeout | null = null;
  private welcomeTimer: NodeJS.Timeout | null = null;
  private livenessTimer: NodeJS.Timeout | null = null;
  private errorMessage: string | undefined;
  private refusal: Pick<SessionEnd, 'retryAfterS' | 'deniedFor' | 'identity'> = {};
  private socketError: string | undefined;
  private localReason: string | undefined;
  private reenroll = false;
  private localError: Error | undefined;
  private readonly log: Logger;

  constructor(private readonly options: SensorConnectionOptions) {
    this.log = options.logger;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    this.ws = new WebSocket(options.url, {
      perMessageDeflate: false,
      handshakeTimeout: options.welcomeTimeoutMs,
      // `ca` replaces the trusted roots, so an extra CA is added to them rather than given alone.
      ...(options.ca ? { ca: [...tls.rootCertificates, options.ca.toString()] } : {}),
    });
    this.ws.on('open', () => this.onOpen());
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    this.ws.on('ping', () => (this.lastReceived = Date.now()));
    this.ws.on('pong', () => (this.lastReceived = Date.now()));
    this.ws.on('error', (err) => {
      this.socketError ??= err.message;
      this.log.debug({ err: err.message }, 'sensor socket error');
    });
    this.ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString()));
    this.welcomeTimer = setTimeout(() => this.terminate('no welcome in time'), options.welcomeTimeoutMs);
  }

  /** Resolves when the session is over, however it ended. */
  get done(): Promise<SessionEnd> {
    return this.ended;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Sends what may be sent now: unacknowledged batches not yet sent on this session, then new ones. */
  flush(): void {
    if (this.state !== 'open' || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() < this.pausedUntil) return;
    const buffer = this.options.buffer;
    for (const batch of [...buffer.unackedBatches]) {
      if (batch.seq <= this.sentSeq) continue;
      const frame = this.encodeBatch(batch.seq, batchEvents(batch));
      if (frameBytes(frame) > this.maxFrameBytes) {
        // Built for an earlier session's larger limit; it cannot be renumbered or split, so it is lost.
        this.log.warn({ seq: batch.seq, bytes: frameBytes(frame), max_frame_bytes: this.maxFrameBytes }, 'unacknowledged batch exceeds max_frame_bytes; dropped');
        buffer.discard(batch.seq);
        continue;
      }
      this.ws.send(frame);
      this.sentSeq = batch.seq;
      buffer.sent(batch.seq);
      this.log.debug({ seq: batch.seq, events: batch.entries.length - batch.start }, 'batch resent');
    }
    while (buffer.unackedBatches.length < this.options.maxInflightBatches) {
      const next = buffer.nextBatch(this.maxBatchEvents, this.maxFrameBytes, (seq, events) => this.encodeBatch(seq, events));
      if (!next) break;
      this.ws.send(next.frame);
      this.sentSeq = next.batch.seq;
      this.log.trace({ seq: next.batch.seq, events: next.batch.entries.length }, 'batch sent');
    }
  }

  /** Ends the session politely; resolves when it is over (the socket is cut after `timeoutMs`). */
  async close(code: number = CloseCode.normal, reason = 'sensor stopping', timeoutMs = 2000): Promise<SessionEnd> {
    if (this.state !== 'closed') {
      this.localReason ??= reason;
      this.state = 'closing';
      if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
      else this.ws.close(code, reason);
      const timer = setTimeout(() => this.ws.terminate(), timeoutMs);
      await this.ended;
      clearTimeout(timer);
    }
    return this.ended;
  }

  /** Drops the connection at once, without a close handshake. */
  terminate(reason: string): void {
    if (this.state === 'closed') return;
    this.localReason ??= reason;
    this.log.debug({ reason }, 'dropping the sensor connection');
    this.ws.terminate();
  }

  // ---- protocol ----

  private onOpen(): void {
    const hello: HelloMessage = {
      t: 'hello',
      versions: [...PROTOCOL_VERSIONS],
      auth: this.options.auth,
      host: this.options.host,
      stream_id: this.options.streamId,
      ...(this.options.crash ? { crash: this.options.crash } : {}),
    };
    this.lastReceived = Date.now();
    this.send(hello);
    this.state = 'hello-sent';
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.lastReceived = Date.now();
    let message: ServerMessage;
    try {
      message = decodeFrame(data, isBinary).message as ServerMessage;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'undecodable frame from the cloud; dropping the connection');
      this.terminate('undecodable frame from the cloud');
      return;
    }
    if (typeof message !== 'object' || message === null) return;
    switch (message.t) {
      case 'welcome':
        void this.onWelcome(message);
        return;
      case 'ack':
        if (typeof message.seq !== 'number') return;
        this.options.buffer.ack(message.seq);
        this.options.handlers.acked(message.seq);
        this.flush();
        return;
      case 'backoff':
        this.onBackoff(message.seconds);
        return;
      case 'task':
        this.options.handlers.task(message);
        return;
      case 'reenroll':
        this.log.warn('the cloud ordered a re-enrollment');
        this.reenroll = true;
        void this.close(CloseCode.normal, 're-enrolling');
        return;
      case 'error':
        this.errorMessage = String(message.message);
        if (typeof message.retry_after_s === 'number' && message.retry_after_s >= 0) this.refusal.retryAfterS = message.retry_after_s;
        if (typeof message.denied_for === 'string') this.refusal.deniedFor = message.denied_for;
        if (isIdentity(message.identity)) this.refusal.identity = message.identity;
        this.log.warn({ code: message.code, message: message.message, retry_after_s: message.retry_after_s, denied_for: message.denied_for }, 'error from the cloud');
        return;
      default:
        // Later minor versions may add messages; they are ignored (protocol.md §6).
        this.log.debug({ t: (message as { t?: unknown }).t }, 'ignoring an unknown message type');
    }
  }

  private async onWelcome(welcome: WelcomeMessage): Promise<void> {
    if (this.state !== 'hello-sent') {
      this.log.warn('unexpected second welcome; dropping the connection');
      this.terminate('unexpected welcome');
      return;
    }
    this.state = 'welcoming';
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.welcomeTimer = null;
    this.maxFrameBytes = positive(welcome.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
    this.maxBatchEvents = positive(welcome.max_batch_events, DEFAULT_MAX_BATCH_EVENTS);
    this.livenessTimeoutMs = positive(welcome.liveness_timeout_s, 0) * 1000;
    // Batches the cloud already stored are forgotten, and what it did not store is settled, before the
    // welcome is handled: its DATA_DROPPED then counts only events that were really lost. The others are
    // resent by flush(), in order, first.
    this.options.buffer.welcomed(typeof welcome.ack_seq === 'number' ? welcome.ack_seq : 0);
    try {
      await this.options.handlers.welcome(welcome);
    } catch (err) {
      this.localError = err as Error;
      await this.close(CloseCode.normal, 'sensor error');
      return;
    }
    if (this.state !== 'welcoming') return; // closed while the welcome was handled
    this.state = 'open';
    this.welcomedAt = Date.now();
    if (this.livenessTimeoutMs > 0) {
      const every = Math.max(100, Math.min(1000, this.livenessTimeoutMs / 4));
      this.livenessTimer = setInterval(() => {
        if (Date.now() - this.lastReceived > this.livenessTimeoutMs) this.terminate('liveness timeout: nothing from the cloud');
      }, every);
    }
    this.flush();
  }

  private onBackoff(seconds: number): void {
    if (typeof seconds !== 'number' || !(seconds >= 0)) return;
    this.log.info({ seconds }, 'backoff from the cloud: pausing event delivery');
    // A newer backoff replaces the pending one.
    this.pausedUntil = Date.now() + seconds * 1000;
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = null;
      // Timers may fire a millisecond before Date.now() reaches pausedUntil: the pause is over now.
      this.pausedUntil = 0;
      this.flush();
    }, seconds * 1000);
  }

  private onClose(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of [this.welcomeTimer, this.pauseTimer]) if (t) clearTimeout(t);
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    const end: SessionEnd = {
      code,
      reason: reason || this.localReason || this.socketError || '',
      welcomed: this.welcomedAt > 0,
      uptimeMs: this.welcomedAt > 0 ? Date.now() - this.welcomedAt : 0,
      reenroll: this.reenroll || code === CloseCode.reenroll,
    };
    if (this.errorMessage !== undefined) end.errorMessage = this.errorMessage;
    Object.assign(end, this.refusal);
    if (this.localError) end.localError = this.localError;
    this.resolveEnded(end);
  }

  private encodeBatch(seq: number, events: SensorEvent[]): Frame {
    return encodeFrame({ t: 'events', seq, events }, this.options.encoding);
  }

  private send(message: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(message, this.options.encoding));
  }
}

function isIdentity(value: unknown): value is NonNullable<ErrorMessage['identity']> {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return ['oid', 'iid', 'sid', 'secret'].every((k) => typeof v[k] === 'string' && (v[k] as string).length > 0);
}

function positive(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;
}
