// Usage metering records (docs/schedule-and-billing.md): what an organization used in one billing period,
// by category and key, as billing_record reports it.

/** One metered amount: `cat`/`k` as in billing_record (e.g. cat "output", k "bytes_tx"). */
export interface UsageAmount {
  oid: string;
  /** Start of the billing period, Unix ms (a multiple of the period length). */
  period: number;
  cat: string;
  k: string;
  v: number;
}

/** A change to a counter: added to it, or (gauges such as artifact bytes stored) replacing it. */
export interface UsageDelta extends UsageAmount {
  mode: 'add' | 'set';
}
