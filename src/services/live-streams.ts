// What the API may ask of this node's live streams (platform-reference.md §4.3): subscribe a client to an
// organization's events as they are stored, filtered like outputs. Implemented by sinks/live/.
import type { LiveStream, OutputFilters } from '../domain/outputs.js';

export interface LiveSubscriptionRequest {
  oid: string;
  stream: LiveStream;
  filters: OutputFilters;
}

/** Where a subscription writes its NDJSON lines; false means "slow down" (call drained() when ready). */
export interface LiveSink {
  write(line: string): boolean;
  close(): void;
}

export interface LiveSubscription {
  /** The sink can take lines again (after write() returned false). */
  drained(): void;
  close(): void;
}

export interface LiveStreams {
  subscribe(request: LiveSubscriptionRequest, sink: LiveSink): LiveSubscription;
}
