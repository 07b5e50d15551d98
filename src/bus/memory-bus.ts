// In-process event bus for the embedded, single-node default.
import type { BusEvent, BusHandler, EventBus } from './event-bus.js';

export class MemoryBus implements EventBus {
  private readonly handlers = new Set<BusHandler>();
  private closed = false;

  publish(events: ReadonlyArray<BusEvent>): void {
    if (this.closed || events.length === 0) return;
    for (const handler of this.handlers) {
      try {
        handler(events);
      } catch {
        // A failing consumer must not break ingestion or the other consumers; consumers count their own errors.
      }
    }
  }

  publishTransient(events: ReadonlyArray<BusEvent>): void {
    this.publish(events);
  }

  subscribe(handler: BusHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
  }
}
