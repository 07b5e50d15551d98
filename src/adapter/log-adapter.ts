// One running `picket adapter`: its sources append to the disk buffer, the USP client ships the buffer to
// the cloud. Start, a periodic status log, and a stop that drains what it can before closing.
import type { Readable } from 'node:stream';
import type { Logger } from '../observability/logger.js';
import { DiskBuffer } from './disk-buffer.js';
import { FileTailer } from './sources/file-tailer.js';
import { LineEncoder, type LineFormat } from './sources/line-encoder.js';
import type { LogSource } from './sources/source.js';
import { StreamLineSource } from './sources/stdin-lines.js';
import { SyslogListener, type ListenAddress } from './sources/syslog-listener.js';
import { UspClient, type UspFatalError } from './usp-client.js';
import { connectionHeader, uspUrl, type AdapterIdentity } from './usp-header.js';

export interface AdapterConfig {
  /** Cloud URL (http(s) or ws(s), with or without /usp). */
  url: string;
  identity: AdapterIdentity;
  stateDir: string;
  files: string[];
  /** Lines of this stream (stdin). */
  input?: Readable;
  syslogUdp?: ListenAddress;
  syslogTcp?: ListenAddress;
  /** How file lines and stdin lines are shipped. */
  fileFormat: LineFormat;
  inputFormat: LineFormat;
  /** `e` of every message (it overrides the mapping); syslog messages default to `syslog`. */
  eventType?: string;
  /** The header maps the event type from the payload: syslog sends no default `e` then. */
  mapsEventType: boolean;
  /** The header maps the event time from the payload: sources send no `s` then. */
  mapsEventTime: boolean;
  compress: boolean;
  maxBufferBytes: number;
  maxLineBytes: number;
  maxSyslogBytes: number;
  readFrom: 'beginning' | 'end';
  pollIntervalMs: number;
  fsyncIntervalMs: number;
  reconnect: { baseMs: number; capMs: number };
  statsIntervalMs: number;
  ca?: Buffer;
  logger: Logger;
}

export const DEFAULT_SYSLOG_EVENT_TYPE = 'syslog';

export class LogAdapter {
  readonly buffer: DiskBuffer;
  readonly client: UspClient;
  readonly sources: readonly LogSource[];
  private readonly log: Logger;
  private statsTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  private constructor(private readonly config: AdapterConfig) {
    this.log = config.logger.child({ component: 'adapter' });
    const url = uspUrl(config.url);
    this.buffer = DiskBuffer.open({
      stateDir: config.stateDir,
      maxBytes: config.maxBufferBytes,
      fsyncIntervalMs: config.fsyncIntervalMs,
      logger: config.logger.child({ component: 'buffer' }),
      owner: { oid: config.identity.oid, sensor_seed_key: config.identity.seedKey },
    });
    this.client = new UspClient({
      url,
      header: connectionHeader(config.identity, this.buffer.instanceId, config.compress),
      queue: this.buffer,
      logger: config.logger.child({ component: 'usp' }),
      reconnect: config.reconnect,
      ...(config.ca ? { ca: config.ca } : {}),
    });
    this.sources = this.buildSources();
  }

  /** Opens the state directory (taking its lock) and builds the sources; nothing runs before start(). */
  static create(config: AdapterConfig): LogAdapter {
    return new LogAdapter(config);
  }

  /** Starts the sources (listening, reading), then the client. */
  async start(): Promise<void> {
    const started: LogSource[] = [];
    try {
      for (const source of this.sources) {
        await source.start();
        started.push(source);
      }
    } catch (err) {
      for (const source of started) await source.stop();
      this.buffer.close();
      throw err;
    }
    this.log.info({ state_dir: this.buffer.stateDir, instance_id: this.buffer.instanceId, sources: this.sources.map((s) => s.name), recovered: this.buffer.stats.recovered }, 'adapter started');
    this.client.start();
    if (this.config.statsIntervalMs > 0) {
      this.statsTimer = setInterval(() => this.log.info(this.status(), 'adapter status'), this.config.statsIntervalMs);
      this.statsTimer.unref();
    }
  }

  /** Resolves when every source's input has ended (only ever for stdin-only adapters). */
  get finished(): Promise<void> {
    return Promise.all(this.sources.map((s) => s.finished)).then(() => undefined);
  }

  get fatal(): Promise<UspFatalError> {
    return this.client.fatal;
  }

  /** Resolves once the cloud has acknowledged everything buffered so far. */
  delivered(): Promise<void> {
    this.buffer.flush();
    return this.buffer.whenEmpty();
  }

  /**
   * Stops reading, gives the cloud up to `drainMs` to acknowledge what is buffered, closes the connection
   * and the buffer (unacknowledged messages stay on disk for the next start). Returns how many remain.
   */
  async stop(drainMs: number): Promise<number> {
    if (this.stopped) return this.buffer.size;
    this.stopped = true;
    if (this.statsTimer) clearInterval(this.statsTimer);
    for (const source of this.sources) await source.stop();
    this.buffer.flush();
    if (this.buffer.size > 0 && drainMs > 0) {
      this.log.info({ unacknowledged: this.buffer.size, drain_ms: drainMs }, 'waiting for the cloud to acknowledge what is buffered');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.buffer.whenEmpty(), this.client.fatal, new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
      clearTimeout(timer);
    }
    await this.client.stop();
    const remaining = this.buffer.size;
    this.buffer.close();
    this.log.info({ ...this.status(), unacknowledged: remaining }, remaining > 0 ? 'adapter stopped; unacknowledged messages stay buffered for the next start' : 'adapter stopped; everything delivered');
    return remaining;
  }

  status(): Record<string, unknown> {
    const b = this.buffer.stats;
    const c = this.client.stats;
    return {
      connected: this.client.isReady,
      window: this.client.currentWindow,
      buffered_messages: this.buffer.size,
      buffered_bytes: this.buffer.bytes,
      appended: b.appended,
      acknowledged: b.acknowledged,
      acked_through: c.ackedThrough,
      sent: c.sent,
      resent: c.resent,
      dropped: b.dropped,
      rejected: b.rejected,
      backoffs: c.backoffs,
      connections: c.connections,
      sources: Object.fromEntries(this.sources.map((s) => [s.name, s.stats()])),
    };
  }

  private buildSources(): LogSource[] {
    const c = this.config;
    const log = this.log;
    const lineEncoder = (format: LineFormat): LineEncoder =>
      new LineEncoder({ format, ...(c.eventType !== undefined ? { eventType: c.eventType } : {}), stampReadTime: !c.mapsEventTime, logger: log });
    const sources: LogSource[] = [];
    for (const file of c.files) {
      sources.push(new FileTailer({ path: file, sink: this.buffer, encoder: lineEncoder(c.fileFormat), logger: log, pollIntervalMs: c.pollIntervalMs, readFrom: c.readFrom, maxLineBytes: c.maxLineBytes }));
    }
    if (c.input) sources.push(new StreamLineSource({ input: c.input, sink: this.buffer, encoder: lineEncoder(c.inputFormat), logger: log, maxLineBytes: c.maxLineBytes }));
    const syslogType = c.eventType ?? (c.mapsEventType ? undefined : DEFAULT_SYSLOG_EVENT_TYPE);
    for (const [protocol, address] of [['udp', c.syslogUdp], ['tcp', c.syslogTcp]] as const) {
      if (!address) continue;
      sources.push(new SyslogListener({ protocol, address, sink: this.buffer, logger: log, eventType: syslogType, stampTime: !c.mapsEventTime, maxMessageBytes: c.maxSyslogBytes }));
    }
    return sources;
  }
}
