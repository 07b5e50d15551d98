// Live streams (platform-reference.md §4.3): every subscriber gets the events of its organization and
// stream as they are stored (schedule ticks, never stored, as they are published), filtered like an
// output, as NDJSON lines. It starts with
// {"__trace":"connected"}, gets {"__trace":"keepalive"} on a timer, and when it reads too slowly its
// bounded queue drops the oldest lines and tells it with {"__trace":"dropped","n":N} (counted in metrics,
// never silent). Nothing here is durable: a live stream is a view, outputs are the reliable path.
import type { BusEvent, EventBus } from '../../bus/event-bus.js';
import type { Metrics } from '../../observability/metrics.js';
import type { LiveSink, LiveStreams, LiveSubscription, LiveSubscriptionRequest } from '../../services/live-streams.js';
import { compileFilter, StoredLogEvent, type RecordFilter } from '../outputs/record-filter.js';

export interface LiveStreamOptions {
  keepaliveMs: number;
  /** Lines a subscriber may have waiting before the oldest are dropped. */
  maxQueuedLines: number;
}

export const TRACE_CONNECTED = '{"__trace":"connected"}';
export const TRACE_KEEPALIVE = '{"__trace":"keepalive"}';

class Subscriber implements LiveSubscription {
  private readonly queue: string[] = [];
  private writable = true;
  private dropped = 0;
  private closed = false;
  private readonly keepalive: NodeJS.Timeout;
  private seq = 0;

  constructor(
    readonly request: LiveSubscriptionRequest,
    private readonly filter: RecordFilter,
    private readonly sink: LiveSink,
    private readonly options: LiveStreamOptions,
    private readonly metrics: Metrics,
    private readonly onClose: (s: Subscriber) => void,
  ) {
    this.push(TRACE_CONNECTED);
    this.keepalive = setInterval(() => this.push(TRACE_KEEPALIVE), options.keepaliveMs);
    this.keepalive.unref();
  }

  offer(e: BusEvent): void {
    if (e.oid !== this.request.oid || e.stream !== this.request.stream) return;
    if (!this.filter(new StoredLogEvent(++this.seq, e.oid, e.sid, e.event_type, e.json))) return;
    this.push(e.json);
  }

  drained(): void {
    this.writable = true;
    this.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    this.onClose(this);
    this.sink.close();
  }

  private push(line: string): void {
    if (this.closed) return;
    this.queue.push(line);
    if (this.queue.length > this.options.maxQueuedLines) {
      const over = this.queue.length - this.options.maxQueuedLines;
      this.queue.splice(0, over);
      this.dropped += over;
      this.metrics.liveDropped.inc(over);
    }
    this.flush();
  }

  private flush(): void {
    while (this.writable && !this.closed) {
      if (this.dropped > 0) {
        const n = this.dropped;
        this.dropped = 0;
        this.writable = this.sink.write(JSON.stringify({ __trace: 'dropped', n }));
        continue;
      }
      const line = this.queue.shift();
      if (line === undefined) return;
      this.writable = this.sink.write(line);
    }
  }
}

export class LiveStreamHub implements LiveStreams {
  private readonly subscribers = new Set<Subscriber>();
  private readonly unsubscribe: () => void;

  constructor(
    bus: EventBus,
    private readonly metrics: Metrics,
    private readonly options: LiveStreamOptions,
  ) {
    this.unsubscribe = bus.subscribe((events) => this.onStored(events));
  }

  subscribe(request: LiveSubscriptionRequest, sink: LiveSink): LiveSubscription {
    // Sampling is by log position for outputs; a live stream samples by its own count instead.
    const s = new Subscriber(request, compileFilter(request.filters), sink, this.options, this.metrics, (x) => {
      this.subscribers.delete(x);
      this.metrics.liveSubscribers.set(this.subscribers.size);
    });
    this.subscribers.add(s);
    this.metrics.liveSubscribers.set(this.subscribers.size);
    return s;
  }

  close(): void {
    this.unsubscribe();
    for (const s of [...this.subscribers]) s.close();
  }

  private onStored(events: ReadonlyArray<BusEvent>): void {
    if (this.subscribers.size === 0) return;
    for (const e of events) for (const s of this.subscribers) s.offer(e);
  }
}
