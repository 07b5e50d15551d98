// Latency samples with weights (one sample per batch, weighted by its event count) and percentiles.
// Values are kept in a growable typed array: a long run at high rate records a few hundred thousand
// batches, which is a few MB and sorts in milliseconds.

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export class LatencyRecorder {
  private values = new Float64Array(1024);
  private weights = new Uint32Array(1024);
  private n = 0;

  record(valueMs: number, weight = 1): void {
    if (this.n === this.values.length) {
      const v = new Float64Array(this.n * 2);
      v.set(this.values);
      this.values = v;
      const w = new Uint32Array(this.n * 2);
      w.set(this.weights);
      this.weights = w;
    }
    this.values[this.n] = valueMs;
    this.weights[this.n] = weight;
    this.n++;
  }

  get size(): number {
    return this.n;
  }

  /** Forgets every sample (e.g. after a warm-up). */
  reset(): void {
    this.n = 0;
  }

  summary(): LatencySummary {
    if (this.n === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
    const idx = Array.from({ length: this.n }, (_, i) => i).sort((a, b) => this.values[a]! - this.values[b]!);
    let total = 0;
    let sum = 0;
    for (let i = 0; i < this.n; i++) {
      total += this.weights[i]!;
      sum += this.values[i]! * this.weights[i]!;
    }
    const at = (q: number): number => {
      const target = q * total;
      let acc = 0;
      for (const i of idx) {
        acc += this.weights[i]!;
        if (acc >= target) return this.values[i]!;
      }
      return this.values[idx[idx.length - 1]!]!;
    };
    const round = (x: number): number => Math.round(x * 100) / 100;
    return { count: total, p50: round(at(0.5)), p90: round(at(0.9)), p99: round(at(0.99)), max: round(this.values[idx[idx.length - 1]!]!), mean: round(sum / total) };
  }
}
