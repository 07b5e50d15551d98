// What the schedule ticker needs to know about an organization's cloud adapters: one entry per adapter to
// tick for (<freq>_per_cloud_adapter). CloudAdapterManager implements it (its enabled adapters).

export interface CloudAdapterEntry {
  /** The adapter's name in its organization (event.adapter_name). */
  adapter_name: string;
  /** The sensor id the adapter's events carry (runtime_mtd.entity_name and routing.sid). */
  sid: string;
  /** Platform of the data it ingests, e.g. "json" or "office365". */
  platform: string;
  /** Hostname the adapter reports as. */
  hostname: string;
  /** Kind of adapter, e.g. "webhook", "poller", "syslog". */
  adapter_type: string;
}

export interface CloudAdapterDirectory {
  /** The adapters of the organization that get schedule ticks (enabled ones). */
  list(oid: string): Promise<CloudAdapterEntry[]>;
}
