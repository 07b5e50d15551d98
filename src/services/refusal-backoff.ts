// How long a refused sensor is told to stay away (decisions.md §3: "a retry-after that grows on each
// refusal, capped"). Kept per sensor in memory: base · 2^(refusals − 1), capped; forgotten once the sensor
// is admitted or has not been refused for a while. Sensors add their own jitter on top.

export interface RefusalBackoffOptions {
  /** First retry-after, seconds. */
  baseS: number;
  /** Largest retry-after, seconds. */
  capS: number;
}

interface Entry {
  refusals: number;
  last: number;
}

/** Entries are kept this many caps after the last refusal, then the count starts over. */
const FORGET_AFTER_CAPS = 2;
/** Most sensors tracked at once; beyond it the oldest entries are dropped (bounded memory). */
const MAX_ENTRIES = 200_000;

export class RefusalBackoff {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: RefusalBackoffOptions) {
    if (!(options.baseS > 0) || !(options.capS >= options.baseS)) {
      throw new Error(`refusal backoff needs 0 < base <= cap (got ${options.baseS}, ${options.capS})`);
    }
  }

  /** Counts one more refusal of `sid` at `now` (ms) and returns the retry-after to send, in seconds. */
  refuse(sid: string, now: number): number {
    const forgetMs = this.options.capS * 1000 * FORGET_AFTER_CAPS;
    let entry = this.entries.get(sid);
    if (entry && now - entry.last > forgetMs) entry = undefined;
    const refusals = (entry?.refusals ?? 0) + 1;
    // Re-inserted so that Map order is least recently refused first.
    this.entries.delete(sid);
    this.entries.set(sid, { refusals, last: now });
    if (this.entries.size > MAX_ENTRIES) this.prune(now, forgetMs);
    const seconds = this.options.baseS * 2 ** Math.min(refusals - 1, 30);
    return Math.min(this.options.capS, seconds);
  }

  /** The sensor got in: its next refusal starts from the base again. */
  admitted(sid: string): void {
    this.entries.delete(sid);
  }

  get size(): number {
    return this.entries.size;
  }

  private prune(now: number, forgetMs: number): void {
    for (const [sid, entry] of this.entries) {
      if (this.entries.size <= MAX_ENTRIES && now - entry.last <= forgetMs) break;
      this.entries.delete(sid);
    }
  }
}
