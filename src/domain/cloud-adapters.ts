// Cloud adapters as records: ingestion sources the cloud runs itself for an organization (an inbound
// webhook, an HTTP poller, a syslog listener; docs/cloud-adapters.md). Parsing and the runtime live in
// src/sources/cloud-adapters/.

export const CLOUD_ADAPTER_TYPES = ['webhook', 'http_poller', 'syslog'] as const;
export type CloudAdapterType = (typeof CLOUD_ADAPTER_TYPES)[number];

/** How records become events (docs/usp.md §5): paths in the record, `/`-separated. */
export interface CloudAdapterMapping {
  parsing_re?: string;
  event_type_path?: string;
  event_time_path?: string;
  sensor_hostname_path?: string;
  investigation_id_path?: string;
}

export interface CloudAdapterConfig {
  oid: string;
  name: string;
  type: CloudAdapterType;
  /** Platform of the adapter's sensor: `json` or `text`. */
  platform: 'json' | 'text';
  /** routing.hostname of its events unless the mapping names one per event. */
  hostname: string;
  mapping: CloudAdapterMapping;
  /** The type's own settings (url, port, secret, ...); secrets included, never shown back by the API. */
  settings: Record<string, unknown>;
  /** Seconds of continuous failure before it is disabled; null: the server default. */
  grace_period: number | null;
  enabled: boolean;
  /** When it was disabled (ms) and its last error then; null while enabled. */
  disabled_at: number | null;
  disabled_error: string | null;
  created: number;
  updated: number;
}
