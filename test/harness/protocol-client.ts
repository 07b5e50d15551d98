// A minimal real client of sensor protocol v1 for tests that need exact control over frames
// (bad input, resends, crashes). It speaks the same wire format as the reference sensor.
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, type Encoding } from '../../src/protocol/codec.js';
import type { HostInfo, SensorEvent, ServerMessage, WelcomeMessage } from '../../src/protocol/messages.js';

export interface Closed {
  code: number;
  reason: string;
}

export class ProtocolClient {
  readonly ws: WebSocket;
  readonly messages: ServerMessage[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<Closed>;
  ackedSeq = 0;

  constructor(url: string, readonly encoding: Encoding = 'json', options: { ca?: Buffer } = {}) {
    this.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sensor`, options.ca ? { ca: options.ca } : {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data, isBinary) => {
      const { message } = decodeFrame(data as Buffer, isBinary);
      const m = message as ServerMessage;
      if (m.t === 'ack') this.ackedSeq = Math.max(this.ackedSeq, m.seq);
      this.messages.push(m);
    });
  }

  static host(overrides: Partial<HostInfo> = {}): HostInfo {
    return {
      hostname: 'test-host', plat: 0x20000000, arch: 2, int_ip: '10.0.0.5', mac: '02-00-00-00-00-01',
      fingerprint: 'f'.repeat(64), version: 'test-client/1', kernel: false, is_segregated: false, ...overrides,
    };
  }

  send(message: unknown): void {
    this.ws.send(encodeFrame(message, this.encoding));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  async hello(auth: { installation_key: string } | { sid: string; secret: string }, options: { host?: Partial<HostInfo>; streamId?: string; versions?: number[] } = {}): Promise<void> {
    await this.opened;
    this.send({ t: 'hello', versions: options.versions ?? [1], auth, host: ProtocolClient.host(options.host), stream_id: options.streamId ?? randomUUID() });
  }

  async welcome(timeoutMs = 10_000): Promise<WelcomeMessage> {
    return (await this.next('welcome', timeoutMs)) as WelcomeMessage;
  }

  sendEvents(seq: number, events: SensorEvent[]): void {
    this.send({ t: 'events', seq, events });
  }

  async waitForAck(seq: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.ackedSeq < seq) {
      if (Date.now() > deadline) throw new Error(`no ack for seq ${seq} (acked ${this.ackedSeq})`);
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed before ack of seq ${seq}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async next(type: ServerMessage['t'], timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => m.t === type);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no "${type}" message within ${timeoutMs} ms`);
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed before a "${type}" message`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(code = 1000): void {
    this.ws.close(code);
  }
}

export function telemetry(n: number, type = 'NEW_PROCESS', base = Date.now()): SensorEvent[] {
  return Array.from({ length: n }, (_, i) => ({ event_type: type, event_time: base + i, event: { FILE_PATH: `/usr/bin/proc-${i}`, PROCESS_ID: 1000 + i, COMMAND_LINE: `proc-${i} --flag` } }));
}
