// Outputs as records: where an organization wants the events of one stream delivered, which of them, and
// in what shape (platform-reference.md §4.2). Parsing and delivery live in src/sinks/outputs/.

/** Streams an output can follow (schedule events are neither retained nor output). */
export const OUTPUT_STREAMS = ['event', 'deployment', 'artifact', 'billing', 'audit'] as const;
export type OutputStream = (typeof OUTPUT_STREAMS)[number];

/** Streams a live stream can follow: the output streams and `schedule`, whose ticks are seen as they are published. */
export const LIVE_STREAMS = [...OUTPUT_STREAMS, 'schedule'] as const;
export type LiveStream = (typeof LIVE_STREAMS)[number];

export interface OutputFilters {
  /** Only these event types (empty: all). */
  event_white_list: string[];
  /** Never these event types. */
  event_black_list: string[];
  /** Only this sensor. */
  sid: string | null;
  /** Only events whose routing.tags hold this tag. */
  tag: string | null;
  /** Only events with this routing.investigation_id. */
  inv_id: string | null;
  /** Send one event in N (1: all). */
  sample_rate: number;
}

export interface OutputShape {
  /** Flatten nested objects into one level, keys joined with "/" ("routing/sid"). */
  is_flat: boolean;
  /** Send only the `event` part, without `routing`. */
  is_no_routing: boolean;
  /** Wrap each record as {"<event_type>": record}. */
  is_prefix_data: boolean;
}

export interface OutputConfig {
  oid: string;
  name: string;
  module: string;
  stream: OutputStream;
  filters: OutputFilters;
  shape: OutputShape;
  /** The module's own fields (dest_host, secret_key, ...). */
  fields: Record<string, string | number | boolean>;
  created: number;
  updated: number;
}

