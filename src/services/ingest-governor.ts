// When the cloud asks senders to pause (BACKOFF, decisions.md §2 and docs/protocol.md §6): ingestion is
// behind (too many received events waiting for their commit, or waiting too long), or an organization
// sends more events per second than its limit. For the rate limit each organization has a token bucket
// (one second of burst); a batch may take it into debt, and the backoff lasts until the debt is paid.

export interface IngestLag {
  /** Events received and not yet committed. */
  pendingEvents: number;
  /** How long the oldest of them has waited, ms. */
  oldestWaitMs: number;
}

export interface IngestGovernorOptions {
  queueEvents: number;
  latencyMs: number;
  lagBackoffS: number;
  /** Events per second per organization; 0 = no limit. */
  orgEpsLimit: number;
}

export interface BackoffVerdict {
  seconds: number;
  kind: 'ingest_lag' | 'org_rate';
  reason: string;
}

/** Longest backoff the rate limit asks for, seconds: a huge burst pauses its sender, not forever. */
export const MAX_RATE_BACKOFF_S = 60;

interface Bucket {
  tokens: number;
  at: number;
}

export class IngestGovernor {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly options: IngestGovernorOptions,
    private readonly lag: () => IngestLag,
    /** Monotonic ms. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Accounts a received batch of `events` from organization `oid`; says whether its sender must pause. */
  check(oid: string, events: number): BackoffVerdict | null {
    const rate = this.chargeOrg(oid, events);
    const lag = this.lag();
    if (lag.pendingEvents > this.options.queueEvents || lag.oldestWaitMs > this.options.latencyMs) {
      const seconds = Math.max(this.options.lagBackoffS, rate?.seconds ?? 0);
      return { seconds, kind: 'ingest_lag', reason: `ingestion behind (${lag.pendingEvents} events waiting, oldest ${Math.round(lag.oldestWaitMs)} ms)` };
    }
    return rate;
  }

  private chargeOrg(oid: string, events: number): BackoffVerdict | null {
    const limit = this.options.orgEpsLimit;
    if (limit <= 0) return null;
    const now = this.now();
    let bucket = this.buckets.get(oid);
    if (!bucket) this.buckets.set(oid, (bucket = { tokens: limit, at: now }));
    bucket.tokens = Math.min(limit, bucket.tokens + ((now - bucket.at) / 1000) * limit);
    bucket.at = now;
    bucket.tokens -= events;
    if (bucket.tokens >= 0) return null;
    const seconds = Math.min(MAX_RATE_BACKOFF_S, Math.max(1, Math.ceil(-bucket.tokens / limit)));
    return { seconds, kind: 'org_rate', reason: `organization over its limit of ${limit} events/s` };
  }
}
