// A small, real USP v2 server for the adapter's tests, written from docs/usp.md: it accepts the JSON header,
// answers rd and fl, decodes msgpack data messages (gunzip when compressed), refuses x going backwards,
// stores each (instance_id, x) once and acknowledges cumulatively when asked. Tests steer it: hold acks,
// send bo or re, cut connections, refuse headers or messages, to see what the client does about it.
import http from 'node:http';
import type net from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { WebSocketServer, type WebSocket } from 'ws';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export interface ReceivedMessage {
  instanceId: string;
  x: number;
  a: boolean;
  fields: Record<string, unknown>;
  /** Which connection (1, 2, …) carried it. */
  connection: number;
  at: number;
}

export interface UspTestServerOptions {
  /** Port to listen on (default: any free port). */
  port?: number;
  window?: number;
  /** Refuse a header: the error text and close code, or undefined to accept. */
  refuseHeader?: (header: Record<string, unknown>) => { code: number; err: string } | undefined;
  /** Refuse a data message (error + close 4000), or undefined to accept. */
  refuseMessage?: (message: Record<string, unknown>) => string | undefined;
}

interface Connection {
  ws: WebSocket;
  id: number;
  header: Record<string, unknown> | null;
  lastX: number;
  /** Highest x with a:true received and not yet acknowledged. */
  ackRequested: number;
  lastAck: number;
  /** x received on this connection and not yet covered by an ack. */
  unacked: number[];
}

export class UspTestServer {
  readonly headers: Array<Record<string, unknown>> = [];
  /** Every data message received, resends included, in arrival order. */
  readonly received: ReceivedMessage[] = [];
  /** The store: each (instance_id, x) once. */
  readonly stored = new Map<string, ReceivedMessage>();
  readonly closes: Array<{ connection: number; code: number }> = [];
  /** Most messages seen in flight (received, not yet acknowledged) on one connection. */
  maxInFlight = 0;
  holdAcks = false;
  connections = 0;
  private readonly live = new Set<Connection>();
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly http: http.Server,
    private readonly wss: WebSocketServer,
    readonly options: UspTestServerOptions,
  ) {}

  static async start(options: UspTestServerOptions = {}): Promise<UspTestServer> {
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ noServer: true });
    const usp = new UspTestServer(server, wss, options);
    server.on('connection', (s) => {
      usp.sockets.add(s);
      s.on('close', () => usp.sockets.delete(s));
    });
    server.on('upgrade', (req, socket, head) => {
      if (req.url !== '/usp') return socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => usp.accept(ws));
    });
    await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
    return usp;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.http.address() as net.AddressInfo).port}`;
  }

  get openConnections(): number {
    return this.live.size;
  }

  /** Stored payload texts (t) in x order, for one instance or all. */
  storedTexts(): string[] {
    return [...this.stored.values()].sort((a, b) => a.x - b.x).map((m) => String(m.fields.t ?? JSON.stringify(m.fields.j)));
  }

  control(message: Record<string, unknown>): void {
    for (const c of this.live) if (c.header) c.ws.send(JSON.stringify(message));
  }

  /** `re`, then the close (1012), as the cloud does on an operator's request. */
  reconnectAll(): void {
    for (const c of this.live) {
      c.ws.send(JSON.stringify({ v: 're' }));
      c.ws.close(1012, 'reconnect');
    }
  }

  /** Cuts every connection without a close handshake (a network failure). */
  cutAll(): void {
    for (const c of this.live) c.ws.terminate();
  }

  /** Acknowledges, on each connection, everything received up to its last ack request. */
  releaseAcks(): void {
    for (const c of this.live) this.ack(c, true);
  }

  async close(): Promise<void> {
    for (const c of this.live) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    const c: Connection = { ws, id: ++this.connections, header: null, lastX: 0, ackRequested: 0, lastAck: 0, unacked: [] };
    this.live.add(c);
    ws.on('close', (code) => {
      this.live.delete(c);
      this.closes.push({ connection: c.id, code });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => (c.header ? this.onData(c, data, isBinary) : this.onHeader(c, data, isBinary)));
  }

  private fail(c: Connection, code: number, err: string): void {
    c.ws.send(JSON.stringify({ v: 'error', err }));
    c.ws.close(code, err.slice(0, 100));
  }

  private onHeader(c: Connection, data: Buffer, isBinary: boolean): void {
    if (isBinary) return this.fail(c, 4000, 'expected the JSON connection header first');
    const header = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    this.headers.push(header);
    if (header.version !== 2 || typeof header.instance_id !== 'string' || typeof header.sensor_seed_key !== 'string') return this.fail(c, 4000, 'bad header');
    const refusal = this.options.refuseHeader?.(header);
    if (refusal) return this.fail(c, refusal.code, refusal.err);
    c.header = header;
    c.ws.send(JSON.stringify({ v: 'rd' }));
    c.ws.send(JSON.stringify({ v: 'fl', win: this.options.window ?? 1024 }));
  }

  private onData(c: Connection, data: Buffer, isBinary: boolean): void {
    if (!isBinary) return this.fail(c, 4000, 'data messages must be binary frames');
    const bytes = c.header!.is_compressed === true ? gunzipSync(data) : data;
    const m = packr.unpack(bytes) as Record<string, unknown>;
    const x = m.x as number;
    if (!(x > c.lastX)) return this.fail(c, 4006, `sequence going backwards: ${x} after ${c.lastX}`);
    const refusal = this.options.refuseMessage?.(m);
    if (refusal) return this.fail(c, 4000, refusal);
    c.lastX = x;
    const { x: _x, a, ...fields } = m;
    const instanceId = String(c.header!.instance_id);
    const message: ReceivedMessage = { instanceId, x, a: a === true, fields, connection: c.id, at: Date.now() };
    this.received.push(message);
    const key = `${instanceId}/${x}`;
    if (!this.stored.has(key)) this.stored.set(key, message);
    c.unacked.push(x);
    if (c.unacked.length > this.maxInFlight) this.maxInFlight = c.unacked.length;
    if (a === true) {
      c.ackRequested = x;
      this.ack(c, false);
    }
  }

  private ack(c: Connection, force: boolean): void {
    if ((this.holdAcks && !force) || c.ackRequested <= c.lastAck) return;
    c.lastAck = c.ackRequested;
    c.unacked = c.unacked.filter((x) => x > c.lastAck);
    c.ws.send(JSON.stringify({ v: 'ack', x: c.lastAck }));
  }
}
