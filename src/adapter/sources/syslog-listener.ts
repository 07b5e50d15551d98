// A syslog receiver on UDP (one message per datagram) or TCP (RFC 6587 framing, syslog-framing.ts): each
// message is parsed (syslog-parser.ts) and shipped as a JSON payload `j` with event type `syslog` (or
// --event-type) and the message's own time. TCP senders are paused while the buffer is full; UDP cannot
// be, so a full buffer drops its oldest messages (and says so).
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../../observability/logger.js';
import type { MessageFields } from '../message.js';
import { SyslogFrameDecoder } from './syslog-framing.js';
import { parseSyslog } from './syslog-parser.js';
import type { LogSource, MessageSink } from './source.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface SyslogListenerOptions {
  protocol: 'udp' | 'tcp';
  address: ListenAddress;
  sink: MessageSink;
  logger: Logger;
  /** `e` of every message; undefined leaves the type to the header's mapping. */
  eventType: string | undefined;
  /** Set `s` from the message's time (else the time it arrived); off when the mapping reads the time. */
  stampTime: boolean;
  maxMessageBytes: number;
}

/** Events before this are not accepted by the cloud (Unix ms, 2001-09-09). */
const MIN_EVENT_TIME_MS = 1e12;

/** `514`, `:514`, `127.0.0.1:514`, `[::1]:514`; without a host, every IPv4 interface. */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]*):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`invalid listen address "${text}": expected <port>, <host>:<port> or [<ipv6>]:<port>`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export class SyslogListener implements LogSource {
  readonly name: string;
  readonly finished: Promise<void> = new Promise(() => undefined);
  private readonly log: Logger;
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private pausedForRoom = false;
  private bound: ListenAddress | null = null;
  private readonly counters = { messages: 0, bytes: 0, unparsed: 0, truncated: 0, connections: 0 };

  constructor(private readonly options: SyslogListenerOptions) {
    this.name = `syslog-${options.protocol}:${options.address.host}:${options.address.port}`;
    this.log = options.logger.child({ source: this.name });
  }

  /** The address actually bound (port 0 picks a free port). */
  get address(): ListenAddress {
    if (!this.bound) throw new Error(`${this.name} is not listening`);
    return this.bound;
  }

  async start(): Promise<void> {
    const { host, port } = this.options.address;
    if (this.options.protocol === 'udp') {
      const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
      socket.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address));
      socket.on('error', (err) => this.log.error({ err: err.message }, 'syslog UDP socket error'));
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(port, host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      this.udp = socket;
      this.bound = { host, port: socket.address().port };
    } else {
      const server = net.createServer((socket) => this.onConnection(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.log.error({ err: err.message }, 'syslog TCP server error'));
      this.tcp = server;
      this.bound = { host, port: (server.address() as net.AddressInfo).port };
    }
    this.log.info({ host, port: this.bound.port }, 'listening for syslog');
  }

  async stop(): Promise<void> {
    if (this.udp) {
      const udp = this.udp;
      this.udp = null;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    }
    if (this.tcp) {
      const tcp = this.tcp;
      this.tcp = null;
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      await closed;
    }
  }

  stats(): Record<string, number> {
    return { ...this.counters };
  }

  private onDatagram(msg: Buffer, peer: string): void {
    const max = this.options.maxMessageBytes;
    this.ship(msg.toString('utf8', 0, Math.min(msg.length, max)), msg.length > max, peer, msg.length);
  }

  private onConnection(socket: net.Socket): void {
    this.counters.connections++;
    this.sockets.add(socket);
    const peer = socket.remoteAddress ?? '';
    const decoder = new SyslogFrameDecoder(this.options.maxMessageBytes);
    this.log.debug({ peer }, 'syslog TCP connection');
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk, (message, truncated) => this.ship(message, truncated, peer, Buffer.byteLength(message)));
      if (!this.options.sink.hasRoom()) this.pauseSenders();
    });
    socket.on('error', (err) => this.log.debug({ peer, err: err.message }, 'syslog TCP connection error'));
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (decoder.pendingBytes > 0) this.log.warn({ peer, bytes: decoder.pendingBytes }, 'syslog TCP connection closed in the middle of a message; its start is dropped');
    });
    if (this.pausedForRoom) socket.pause();
  }

  private pauseSenders(): void {
    if (this.pausedForRoom) return;
    this.pausedForRoom = true;
    for (const s of this.sockets) s.pause();
    this.log.warn('buffer full: pausing syslog TCP senders until the cloud catches up');
    void this.options.sink.waitForRoom().then(() => {
      this.pausedForRoom = false;
      for (const s of this.sockets) s.resume();
      this.log.info('resuming syslog TCP senders');
    });
  }

  private ship(text: string, truncated: boolean, peer: string, bytes: number): void {
    if (text.trim() === '') return;
    const now = Date.now();
    const { record, time } = parseSyslog(text, new Date(now));
    this.counters.messages++;
    this.counters.bytes += bytes;
    if (record.format === 'unparsed') this.counters.unparsed++;
    if (truncated) {
      this.counters.truncated++;
      this.log.warn({ peer, max_message_bytes: this.options.maxMessageBytes }, 'syslog message longer than the limit; cut');
    }
    const fields: MessageFields = { j: { ...record, source_ip: peer } };
    if (this.options.eventType !== undefined) fields.e = this.options.eventType;
    if (this.options.stampTime) fields.s = time !== undefined && time >= MIN_EVENT_TIME_MS ? time : now;
    this.options.sink.append(fields);
  }
}
