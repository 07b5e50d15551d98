// How a cloud adapter is doing: consecutive failures since its last success, when they began and the last
// error; the wait before the next attempt (exponential with jitter, capped); and whether it has been
// failing for longer than its grace period, at which point it is to be disabled.

export interface RetryPolicy {
  /** Wait after the first failure, ms (doubles per consecutive failure). */
  baseMs: number;
  /** Longest wait, ms. */
  capMs: number;
}

export class AdapterHealth {
  failures = 0;
  failingSince: number | null = null;
  lastError: string | null = null;
  lastErrorAt: number | null = null;

  constructor(
    private readonly policy: RetryPolicy,
    private readonly graceMs: number,
    private readonly now: () => number,
    private readonly random: () => number = Math.random,
  ) {}

  succeeded(): void {
    this.failures = 0;
    this.failingSince = null;
  }

  /** Records a failure; returns the wait before the next attempt and whether the grace period is over. */
  failed(error: string): { retryInMs: number; expired: boolean } {
    const at = this.now();
    this.failures++;
    this.failingSince ??= at;
    this.lastError = error;
    this.lastErrorAt = at;
    const ceiling = Math.min(this.policy.capMs, this.policy.baseMs * 2 ** Math.min(this.failures - 1, 30));
    // Half fixed, half random: adapters failing together do not retry in step.
    const retryInMs = ceiling / 2 + (ceiling / 2) * this.random();
    return { retryInMs, expired: at - this.failingSince >= this.graceMs };
  }
}
