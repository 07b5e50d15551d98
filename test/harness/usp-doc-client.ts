// A USP v2 client written from docs/usp.md alone (not from Picket's adapter code), to prove the page is
// enough: header, rd/fl, msgpack data messages (gzip when compressed), ack requested every half window,
// cumulative acks, bo, re, and a resend of everything unacknowledged after each reconnect.
import { gzipSync } from 'node:zlib';
import { pack } from 'msgpackr';
import WebSocket from 'ws';

export interface DocClientOptions {
  url: string;
  header: Record<string, unknown>;
  compressed: boolean;
  /** Delay before reconnecting after a close, ms. */
  reconnectDelayMs?: number;
}

interface Pending {
  x: number;
  fields: Record<string, unknown>;
}

export class UspDocClient {
  readonly controls: Array<Record<string, unknown>> = [];
  readonly errors: string[] = [];
  /** When each data message was put on the wire (Date.now()), in order. */
  readonly sentAt: number[] = [];
  /** When each bo arrived (Date.now()) and for how long, in order. */
  readonly backoffs: Array<{ at: number; dur: number }> = [];
  connections = 0;
  resent = 0;
  ackedUpTo = 0;
  window = 1;
  private ws: WebSocket | null = null;
  private ready = false;
  private nextX = 1;
  /** Shipped and not yet acknowledged, oldest first. */
  private unacked: Pending[] = [];
  /** Index in `unacked` of the next message to put on the wire in this connection. */
  private cursor = 0;
  private backoffUntil = 0;
  private stopped = false;
  private flushQueued = false;
  private pump: NodeJS.Timeout | null = null;

  constructor(private readonly options: DocClientOptions) {}

  start(): void {
    this.connect();
  }

  /** Queues one message; `fields` holds the payload (t, j or b) and optional e, s, inv. */
  ship(fields: Record<string, unknown>): number {
    const x = this.nextX++;
    this.unacked.push({ x, fields });
    if (!this.flushQueued) {
      // Coalesce a burst of ship() calls into one flush, so only its last message asks for an ack.
      this.flushQueued = true;
      setImmediate(() => ((this.flushQueued = false), this.flush()));
    }
    return x;
  }

  get isReady(): boolean {
    return this.ready;
  }

  get pending(): number {
    return this.unacked.length;
  }

  /** The raw socket, for tests that send malformed frames on purpose. */
  get socket(): WebSocket | null {
    return this.ws;
  }

  stop(): void {
    this.stopped = true;
    if (this.pump) clearTimeout(this.pump);
    this.ws?.close(1000);
  }

  /** Ack requested every half window, and on the last message of a burst so that nothing waits for a later one. */
  private encode(p: Pending, lastOfBurst: boolean): Buffer {
    const ackEvery = Math.max(1, Math.floor(this.window / 2));
    const message = { x: p.x, ...p.fields, ...(lastOfBurst || p.x % ackEvery === 0 ? { a: true } : {}) };
    const bytes = pack(message);
    return this.options.compressed ? gzipSync(bytes) : bytes;
  }

  private connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.options.url);
    this.ws = ws;
    this.ready = false;
    ws.on('open', () => {
      this.connections++;
      ws.send(JSON.stringify(this.options.header));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const control = JSON.parse(data.toString()) as { v: string; x?: number; dur?: number; win?: number; err?: string };
      this.controls.push(control);
      switch (control.v) {
        case 'rd':
          this.ready = true;
          // Resend everything unacknowledged, oldest first, with the original x.
          this.resent += this.unacked.length;
          this.cursor = 0;
          this.flush();
          break;
        case 'fl':
          if (control.win! > this.window) this.window = control.win!;
          this.flush();
          break;
        case 'ack': {
          const x = control.x!;
          let n = 0;
          while (n < this.unacked.length && this.unacked[n]!.x <= x) n++;
          this.unacked.splice(0, n);
          this.cursor = Math.max(0, this.cursor - n);
          this.ackedUpTo = Math.max(this.ackedUpTo, x);
          this.flush();
          break;
        }
        case 'bo':
          this.backoffs.push({ at: Date.now(), dur: control.dur! });
          this.backoffUntil = Date.now() + control.dur! * 1000;
          break;
        case 're':
          ws.close(1000);
          break;
        case 'error':
          this.errors.push(control.err ?? '');
          break;
      }
    });
    ws.on('close', () => {
      this.ready = false;
      if (!this.stopped) setTimeout(() => this.connect(), this.options.reconnectDelayMs ?? 100);
    });
    ws.on('error', () => undefined);
  }

  private flush(): void {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const wait = this.backoffUntil - Date.now();
    if (wait > 0) {
      if (!this.pump) this.pump = setTimeout(() => ((this.pump = null), this.flush()), wait);
      return;
    }
    const inFlightLimit = this.window;
    while (this.cursor < this.unacked.length && this.cursor < inFlightLimit) {
      const p = this.unacked[this.cursor]!;
      const last = this.cursor === this.unacked.length - 1 || this.cursor === inFlightLimit - 1;
      this.ws.send(this.encode(p, last));
      this.sentAt.push(Date.now());
      this.cursor++;
    }
  }
}
