// One simulated sensor: a real sensor-protocol v1 session (hello, enrollment, numbered batches,
// cumulative acks, BACKOFF, resend of unacknowledged batches after a reconnect) with none of the
// reference sensor's disk state, so that one process can hold thousands of them.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { cloudNotification } from '../catalogue/index.js';
import { newId } from '../domain/ids.js';
import { ARCHITECTURE, PLATFORM } from '../domain/platform.js';
import { decodeFrame, encodeFrame, type Encoding } from '../protocol/codec.js';
import type { HelloMessage, HostInfo, SensorEvent, ServerMessage, TaskMessage } from '../protocol/messages.js';

export interface SimulatedSensorOptions {
  /** Full gateway URL, e.g. ws://127.0.0.1:4830/sensor. */
  sensorUrl: string;
  installationKey: string;
  host: HostInfo;
  encoding: Encoding;
  /** Most unacknowledged batches in flight. */
  maxInflight: number;
  ca?: Buffer;
}

export interface SimulatedSensorListener {
  /** A cumulative ack released `events` events in `batches` batches; latency per batch from first send. */
  acked(sensor: SimulatedSensor, released: ReadonlyArray<{ latencyMs: number; events: number }>): void;
  /** The session ended (code/reason from the server or the socket). */
  closed(sensor: SimulatedSensor, code: number, reason: string, wasOnline: boolean): void;
  /** A task arrived (it is answered at once with CLOUD_NOTIFICATION and RECEIPT ERROR 0). */
  tasked?(sensor: SimulatedSensor, task: TaskMessage): void;
  /** The cloud acknowledged (stored) the answer to a task. */
  taskAnswerStored?(sensor: SimulatedSensor, taskId: string): void;
}

interface PendingBatch {
  seq: number;
  firstSentAt: number;
  events: number;
  frame: string | Buffer;
  /** The task this batch answers, if it does. */
  taskId?: string;
}

export class SimulatedSensor {
  sid: string | null = null;
  private oid = '';
  private iid = '';
  private secret: string | null = null;
  /** Tasks received and answered. */
  tasksAnswered = 0;
  private ws: WebSocket | null = null;
  private online = false;
  private lastSeq = 0;
  private readonly streamId = newId();
  private readonly pending: PendingBatch[] = [];
  private backoffUntil = 0;
  /** Backoff messages received. */
  backoffs = 0;
  /** Batches sent again after a reconnect. */
  resentBatches = 0;
  maxBatchEvents = 5000;

  constructor(
    readonly index: number,
    private readonly options: SimulatedSensorOptions,
    private readonly listener: SimulatedSensorListener,
  ) {}

  get isOnline(): boolean {
    return this.online;
  }

  get inflight(): number {
    return this.pending.length;
  }

  get unackedEvents(): number {
    let n = 0;
    for (const p of this.pending) n += p.events;
    return n;
  }

  canSend(now: number): boolean {
    return this.online && this.pending.length < this.options.maxInflight && now >= this.backoffUntil;
  }

  /** Opens a session (enrolling on the first one); resolves when welcomed, rejects if closed before. */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.options.sensorUrl, { perMessageDeflate: false, ...(this.options.ca ? { ca: this.options.ca } : {}) });
      this.ws = ws;
      let welcomed = false;
      ws.on('open', () => {
        const hello: HelloMessage = {
          t: 'hello',
          versions: [1],
          auth: this.sid && this.secret ? { sid: this.sid, secret: this.secret } : { installation_key: this.options.installationKey },
          host: this.options.host,
          stream_id: this.streamId,
        };
        ws.send(encodeFrame(hello, this.options.encoding));
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        let message: ServerMessage;
        try {
          message = decodeFrame(data, isBinary).message as ServerMessage;
        } catch {
          ws.terminate();
          return;
        }
        if (message.t === 'welcome') {
          if (message.identity) this.secret = message.identity.secret;
          this.sid = message.sid;
          this.oid = message.oid;
          this.iid = message.iid;
          this.maxBatchEvents = message.max_batch_events;
          this.release(message.ack_seq);
          this.online = true;
          welcomed = true;
          for (const p of this.pending) {
            this.resentBatches++;
            ws.send(p.frame);
          }
          resolve();
        } else if (message.t === 'ack') {
          this.release(message.seq);
        } else if (message.t === 'backoff') {
          this.backoffs++;
          this.backoffUntil = Date.now() + message.seconds * 1000;
        } else if (message.t === 'task') {
          this.answer(message);
        }
      });
      ws.on('error', () => undefined);
      ws.on('close', (code: number, reason: Buffer) => {
        const wasOnline = this.online;
        this.online = false;
        this.ws = null;
        if (!welcomed) reject(new Error(`closed before welcome: ${code} ${reason.toString() || ''}`.trim()));
        this.listener.closed(this, code, reason.toString(), wasOnline);
      });
    });
  }

  /** Sends one batch; the caller checks canSend() first. */
  send(events: SensorEvent[], now: number, taskId?: string): void {
    if (!this.ws || !this.online) throw new Error('sensor is not online');
    const seq = ++this.lastSeq;
    const frame = encodeFrame({ t: 'events', seq, events }, this.options.encoding);
    this.pending.push({ seq, firstSentAt: now, events: events.length, frame, ...(taskId !== undefined ? { taskId } : {}) });
    this.ws.send(frame);
  }

  /** Answers a task like a sensor that ran it: CLOUD_NOTIFICATION, then RECEIPT ERROR 0, in one batch. */
  private answer(task: TaskMessage): void {
    if (!this.online || !this.sid) return;
    this.listener.tasked?.(this, task);
    const now = Date.now();
    const routing = { task_id: task.task_id, ...(task.investigation_id !== undefined ? { investigation_id: task.investigation_id } : {}) };
    const name = task.command.trim().split(/\s+/)[0] ?? '';
    const notification = cloudNotification({
      notificationId: name || 'unknown', notification: task.investigation_id !== undefined ? { INVESTIGATION_ID: task.investigation_id } : {},
      oid: this.oid, sid: this.sid, iid: this.iid, plat: this.options.host.plat, arch: this.options.host.arch, expiry: task.expiry,
    });
    this.send([
      { event_type: 'CLOUD_NOTIFICATION', event_time: now, event: notification as unknown as Record<string, unknown>, ...routing },
      { event_type: 'RECEIPT', event_time: now, event: { ERROR: 0, ERROR_MESSAGE: 'done' }, ...routing },
    ], now, task.task_id);
    this.tasksAnswered++;
  }

  /** Polite close (1000). */
  close(): void {
    this.ws?.close(1000, 'simulation finished');
  }

  /** Drops the socket without a close handshake, like a sensor losing its network. */
  terminate(): void {
    this.ws?.terminate();
  }

  private release(ackSeq: number): void {
    if (this.pending.length === 0 || this.pending[0]!.seq > ackSeq) return;
    const now = Date.now();
    const released: Array<{ latencyMs: number; events: number }> = [];
    while (this.pending.length > 0 && this.pending[0]!.seq <= ackSeq) {
      const p = this.pending.shift()!;
      released.push({ latencyMs: now - p.firstSentAt, events: p.events });
      if (p.taskId !== undefined) this.listener.taskAnswerStored?.(this, p.taskId);
    }
    this.listener.acked(this, released);
  }
}

/** Host details of simulated sensor number `index`: a mix of Windows and Linux x64 hosts. */
export function simulatedHost(index: number, prefix: string): HostInfo {
  const windows = index % 3 !== 2;
  return {
    hostname: `${prefix}-${String(index).padStart(5, '0')}`,
    plat: windows ? PLATFORM.windows : PLATFORM.linux,
    arch: ARCHITECTURE.x64,
    int_ip: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`,
    mac: `02-00-${randomBytes(4).toString('hex').match(/../g)!.join('-')}`.toUpperCase(),
    fingerprint: randomBytes(16).toString('hex'),
    version: 'picket-simulator',
    kernel: windows,
    is_segregated: false,
  };
}
