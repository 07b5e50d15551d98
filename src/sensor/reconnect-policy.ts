// When the reference sensor reconnects: exponential backoff with full jitter (protocol.md §10), so that
// thousands of sensors cut off by a server restart do not come back in the same second.

export interface ReconnectPolicyOptions {
  /** Upper bound of the first retry's wait, ms. */
  baseMs: number;
  /** Largest upper bound of any wait, ms. */
  capMs: number;
  /** A session that stayed up this long (ms) resets the attempt counter. */
  stableAfterMs: number;
  /** Uniform random number in [0, 1); injectable for tests. */
  random: () => number;
}

export const DEFAULT_RECONNECT_POLICY: ReconnectPolicyOptions = {
  baseMs: 1000,
  capMs: 60_000,
  stableAfterMs: 30_000,
  random: Math.random,
};

export class ReconnectPolicy {
  private readonly options: ReconnectPolicyOptions;
  private consecutive = 0;

  constructor(options: Partial<ReconnectPolicyOptions> = {}) {
    this.options = { ...DEFAULT_RECONNECT_POLICY, ...options };
    if (!(this.options.baseMs > 0) || !(this.options.capMs >= this.options.baseMs)) {
      throw new Error(`reconnect policy needs 0 < baseMs <= capMs (got ${this.options.baseMs}, ${this.options.capMs})`);
    }
  }

  /** Consecutive failed attempts so far (0 after a reset). */
  get attempts(): number {
    return this.consecutive;
  }

  /** Upper bound of the next wait: min(cap, base · 2^n). */
  get ceilingMs(): number {
    // Past 2^31 the product only grows; clamp the exponent so it never overflows to Infinity.
    return Math.min(this.options.capMs, this.options.baseMs * 2 ** Math.min(this.consecutive, 31));
  }

  /**
   * The wait before the next attempt, and counts that attempt. A server-provided retry-after (ms) is a
   * floor: the jittered wait is added to it, so refused sensors are still spread out when they return.
   */
  nextDelayMs(retryAfterMs?: number): number {
    const jitter = Math.floor(this.options.random() * this.ceilingMs);
    this.consecutive++;
    return retryAfterMs !== undefined && retryAfterMs > 0 ? retryAfterMs + jitter : jitter;
  }

  /** A session ended after being up for `uptimeMs` (0 if it never got a welcome). */
  sessionEnded(uptimeMs: number): void {
    if (uptimeMs >= this.options.stableAfterMs) this.reset();
  }

  reset(): void {
    this.consecutive = 0;
  }
}

/**
 * A retry delay the server put in a close reason or error message: "retry-after=<seconds>" (4010, 1013).
 * Returns milliseconds, or undefined when the text carries none.
 */
export function parseRetryAfterMs(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const m = /retry[-_ ]after[=: ]\s*(\d+(?:\.\d+)?)/i.exec(text);
  if (!m) return undefined;
  const seconds = Number(m[1]);
  return Number.isFinite(seconds) ? Math.round(seconds * 1000) : undefined;
}
