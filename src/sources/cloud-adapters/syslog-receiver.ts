// Syslog listener: `picket adapter`'s UDP/TCP syslog receiver (RFC 5424 / 3164 parsing, RFC 6587 TCP
// framing) run by the cloud, with the adapter's sensor as its sink: messages received in one turn of the
// event loop are stored together. TCP senders are paused while too many messages wait for the store; a
// port that cannot be bound (in use, no permission) is retried with backoff.
import { SyslogListener } from '../../adapter/sources/syslog-listener.js';
import type { MessageSink } from '../../adapter/sources/source.js';
import type { MessageFields } from '../../adapter/message.js';
import type { SyslogSettings } from './adapter-config.js';
import type { AdapterRecord } from './adapter-sensor.js';
import type { AdapterContext, AdapterSource } from './adapter-runner.js';

const MAX_WAITING_MESSAGES = 10_000;
const MAX_MESSAGE_BYTES = 64 * 1024;

/** Collects messages and stores them in batches under the adapter's sensor. */
class SensorSink implements MessageSink {
  private batch: AdapterRecord[] = [];
  private waiting = 0;
  private flushing: Promise<void> | null = null;
  private roomWaiters: Array<() => void> = [];

  constructor(private readonly ctx: AdapterContext) {}

  append(fields: MessageFields): number {
    const record: AdapterRecord = { j: fields.j };
    if (fields.e !== undefined) record.e = fields.e;
    if (fields.s !== undefined) record.s = fields.s;
    this.batch.push(record);
    this.waiting++;
    this.flushing ??= this.flush();
    return this.waiting;
  }

  setCursor(): void {}

  cursor(): unknown {
    return undefined;
  }

  hasRoom(): boolean {
    return this.waiting < MAX_WAITING_MESSAGES;
  }

  waitForRoom(): Promise<void> {
    return this.hasRoom() ? Promise.resolve() : new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    while (this.batch.length > 0) {
      const records = this.batch;
      this.batch = [];
      try {
        this.ctx.succeeded(await this.ctx.sensor.deliver(records));
      } catch (err) {
        // UDP cannot be asked to resend: what could not be stored is lost, and said so.
        this.ctx.failed(`could not store ${records.length} syslog message(s): ${(err as Error).message}`);
      }
      this.waiting -= records.length;
      if (this.hasRoom()) for (const wake of this.roomWaiters.splice(0)) wake();
    }
    this.flushing = null;
  }
}

export class SyslogReceiver implements AdapterSource {
  private listener: SyslogListener | undefined;
  private readonly sink: SensorSink;
  private binding: Promise<void> | undefined;

  constructor(
    private readonly settings: SyslogSettings,
    private readonly ctx: AdapterContext,
  ) {
    this.sink = new SensorSink(ctx);
  }

  async start(): Promise<void> {
    this.binding = this.bind();
  }

  private async bind(): Promise<void> {
    const { ctx, settings } = this;
    // The mapping may name the event type; otherwise every message is a `syslog` event.
    const eventType = ctx.config.mapping.event_type_path ? undefined : 'syslog';
    while (!ctx.signal.aborted) {
      const listener = new SyslogListener({
        protocol: settings.protocol, address: { host: settings.host, port: settings.port }, sink: this.sink, logger: ctx.logger,
        eventType, stampTime: !ctx.config.mapping.event_time_path, maxMessageBytes: MAX_MESSAGE_BYTES,
      });
      try {
        await listener.start();
      } catch (err) {
        await ctx.wait(ctx.failed(`cannot listen on ${settings.protocol} ${settings.host}:${settings.port}: ${(err as Error).message}`));
        continue;
      }
      if (ctx.signal.aborted) {
        await listener.stop();
        return;
      }
      this.listener = listener;
      ctx.succeeded(0);
      return;
    }
  }

  async stop(): Promise<void> {
    await this.binding;
    await this.listener?.stop();
    await this.sink.drain();
  }
}
