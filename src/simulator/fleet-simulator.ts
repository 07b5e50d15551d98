// Many simulated sensors in one process, speaking the real sensor protocol to a real cloud: enrollment,
// a paced (or saturating) event load, reconnects, and a reconnect storm, with counters and latencies.
// Used by `picket simulate` and by the benchmarks in bench/.
import type { Encoding } from '../protocol/codec.js';
import { GATEWAY_PATH, type SensorEvent } from '../protocol/messages.js';
import { EventMix } from './event-mix.js';
import { LatencyRecorder, type LatencySummary } from './latency-recorder.js';
import { SimulatedSensor, simulatedHost, type SimulatedSensorListener } from './simulated-sensor.js';

/** Most slots the paced sensors are spread over within a tick. */
const PACING_SLOTS = 10;
/** Shortest time between two slots, ms. */
const MIN_SLOT_MS = 5;

export interface FleetOptions {
  /** Cloud URL (http, https, ws or wss); the gateway path is appended. */
  url: string;
  installationKey: string;
  sensors: number;
  encoding: Encoding;
  /** New sessions opened per second while connecting (not during a reconnect storm). */
  connectRate: number;
  /** Most connection attempts in flight at once. */
  connectConcurrency: number;
  /** Most unacknowledged batches per sensor. */
  maxInflight: number;
  hostnamePrefix: string;
  seed: number;
  ca?: Buffer;
  /** Called when the cloud stored a sensor's answer to a task (for the tasking benchmark). */
  onTaskAnswerStored?: (taskId: string) => void;
  /**
   * The events of a sensor's next batch, at most `max` of them; an empty array when that sensor has
   * nothing more to send. Default: `max` events of the realistic event mix, endlessly.
   */
  batchSource?: (sensor: SimulatedSensor, max: number, now: number) => SensorEvent[];
}

export interface LoadOptions {
  /** Total events per second across the fleet; 0 sends as fast as acknowledgements allow. */
  eps: number;
  durationS: number;
  /** Events per batch when saturating (eps 0). */
  batchEvents: number;
  /** Pacing tick. */
  tickMs: number;
  /** Samples before this many seconds are not counted in latencies. */
  warmupS: number;
  onProgress?: (p: SimulationProgress) => void;
  progressIntervalMs: number;
  signal?: AbortSignal;
}

export interface SimulationProgress {
  phase: 'connecting' | 'running' | 'draining' | 'storm';
  elapsedS: number;
  online: number;
  sensors: number;
  eventsSent: number;
  eventsAcked: number;
  /** Rates over the last progress interval. */
  epsSent: number;
  epsAcked: number;
  errors: number;
}

export interface SimulationSummary {
  sensors: number;
  connected: number;
  online_at_end: number;
  enrolled: number;
  connect_errors: number;
  disconnects: number;
  all_online_ms: number | null;
  /** Milliseconds from dropping every session at once until all were online again (when a storm ran). */
  reconnect_storm_ms: number | null;
  duration_s: number;
  eps_target: number;
  events_sent: number;
  events_acked: number;
  events_unacked: number;
  /** Events the pacer could not send because the cloud held them back (inflight window full or BACKOFF). */
  events_deferred: number;
  batches_sent: number;
  batches_resent: number;
  backoffs: number;
  eps_sent: number;
  eps_acked: number;
  mean_event_bytes: number;
  encoding: Encoding;
  ack_latency_ms: LatencySummary;
  connect_ms: LatencySummary;
  errors: Record<string, number>;
}

/** ws(s)://host/sensor from whatever URL form the user gave. */
export function gatewayUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
  if (!u.pathname.endsWith(GATEWAY_PATH)) u.pathname = `${u.pathname.replace(/\/+$/, '')}${GATEWAY_PATH}`;
  return u.toString();
}

export class FleetSimulator {
  readonly sensors: SimulatedSensor[] = [];
  private readonly mix: EventMix;
  private readonly ackLatency = new LatencyRecorder();
  private readonly connectLatency = new LatencyRecorder();
  private readonly errors = new Map<string, number>();
  private readonly everConnected = new Set<number>();
  private stopping = false;
  private reconnecting = false;
  private online = 0;
  private eventsSent = 0;
  private eventsAcked = 0;
  private eventsDeferred = 0;
  private batchesSent = 0;
  private disconnects = 0;
  private connectErrors = 0;
  private allOnlineMs: number | null = null;
  private stormMs: number | null = null;
  private loadStartedAt = 0;
  private loadEndedAt = 0;
  private epsTarget = 0;
  private recordLatency = true;
  private readonly connectWaiters: Array<() => void> = [];
  private startedAt = Date.now();

  constructor(private readonly options: FleetOptions) {
    this.mix = new EventMix(options.seed);
    const listener: SimulatedSensorListener = {
      acked: (_sensor, released) => {
        for (const r of released) {
          this.eventsAcked += r.events;
          if (this.recordLatency) this.ackLatency.record(r.latencyMs, r.events);
        }
        this.saturateOne(_sensor);
      },
      closed: (sensor, code, reason, wasOnline) => {
        if (!wasOnline) return;
        this.online--;
        if (this.stopping || this.reconnecting) return;
        this.disconnects++;
        this.countError(`closed ${code}${reason ? ` ${reason}` : ''}`);
        setTimeout(() => void this.connectWithRetry(sensor), 500 + Math.random() * 1500).unref();
      },
      taskAnswerStored: (_sensor, taskId) => options.onTaskAnswerStored?.(taskId),
    };
    const url = gatewayUrl(options.url);
    for (let i = 0; i < options.sensors; i++) {
      this.sensors.push(new SimulatedSensor(i, {
        sensorUrl: url,
        installationKey: options.installationKey,
        host: simulatedHost(i, options.hostnamePrefix),
        encoding: options.encoding,
        maxInflight: options.maxInflight,
        ca: options.ca,
      }, listener));
    }
  }

  get onlineCount(): number {
    return this.online;
  }

  get meanEventBytes(): number {
    return this.mix.meanEventBytes;
  }

  /** Enrolls and connects every sensor at the configured rate; resolves when all are online or on timeout. */
  async connectAll(timeoutMs: number, onProgress?: (p: SimulationProgress) => void, progressIntervalMs = 1000): Promise<number> {
    this.startedAt = Date.now();
    const progress = onProgress ? setInterval(() => onProgress(this.progress('connecting', 0, 0)), progressIntervalMs) : null;
    const interval = 1000 / Math.max(1, this.options.connectRate);
    let inflight = 0;
    const slot = async (): Promise<void> => {
      while (inflight >= this.options.connectConcurrency) await new Promise<void>((r) => this.connectWaiters.push(r));
    };
    const pacerStart = Date.now();
    try {
      for (let i = 0; i < this.sensors.length; i++) {
        const due = pacerStart + i * interval;
        const wait = due - Date.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        await slot();
        inflight++;
        void this.connectWithRetry(this.sensors[i]!).finally(() => {
          inflight--;
          this.connectWaiters.shift()?.();
        });
        if (Date.now() - this.startedAt > timeoutMs) break;
      }
      await this.waitUntil(() => this.online >= this.sensors.length, timeoutMs - (Date.now() - this.startedAt));
    } finally {
      if (progress) clearInterval(progress);
    }
    if (this.online >= this.sensors.length) this.allOnlineMs = Date.now() - this.startedAt;
    return this.online;
  }

  /** Sends the event load for a duration, then waits (bounded) for outstanding acknowledgements. */
  async runLoad(load: LoadOptions): Promise<void> {
    this.epsTarget = load.eps;
    this.loadStartedAt = Date.now();
    const end = this.loadStartedAt + load.durationS * 1000;
    const perSensorEps = load.eps > 0 ? load.eps / this.sensors.length : 0;
    // Each sensor starts at a random phase of its send interval, as a real fleet does: at 1 event per 5 s,
    // sensors starting with equal credit would all send in the same tick, every 5 s.
    const credit = Float64Array.from(this.sensors, () => Math.random());
    const creditCap = Math.max(perSensorEps * 2, 1);
    this.saturateBatch = load.eps > 0 ? 0 : load.batchEvents;
    this.recordLatency = load.warmupS <= 0;
    // Paced sensors are spread over the tick in slots a few ms apart (sensor i in slot i % slots), as
    // sensors of a real fleet send independently: serving them all in one pass would send the whole
    // fleet's batches in one burst per tick, and measure the queue behind that burst as latency.
    const slots = perSensorEps > 0 ? Math.max(1, Math.min(PACING_SLOTS, this.sensors.length, Math.floor(load.tickMs / MIN_SLOT_MS))) : 1;
    const slotMs = load.tickMs / slots;
    const lastServed = new Array<number>(slots).fill(Date.now());
    let slot = 0;
    let lastProgress = { at: Date.now(), sent: 0, acked: 0 };
    let nextProgress = Date.now() + load.progressIntervalMs;

    if (this.saturateBatch > 0) for (const s of this.sensors) this.saturateOne(s);
    while (!load.signal?.aborted) {
      const now = Date.now();
      if (now >= end) break;
      if (!this.recordLatency && now - this.loadStartedAt >= load.warmupS * 1000) {
        this.ackLatency.reset();
        this.recordLatency = true;
      }
      if (perSensorEps > 0) {
        const dt = (now - lastServed[slot]!) / 1000;
        lastServed[slot] = now;
        for (let i = slot; i < this.sensors.length; i += slots) {
          const s = this.sensors[i]!;
          let c = credit[i]! + perSensorEps * dt;
          const n = Math.min(Math.floor(c), s.maxBatchEvents);
          // Stamped when built and sent, not at the slot's start: the events before it took time to encode.
          const at = n > 0 ? Date.now() : now;
          const events = n > 0 && s.canSend(at) ? this.nextBatch(s, n, at) : [];
          if (events.length > 0) {
            s.send(events, at);
            this.eventsSent += events.length;
            this.batchesSent++;
            c -= events.length;
          }
          if (c > creditCap) {
            this.eventsDeferred += Math.floor(c - creditCap);
            c = creditCap;
          }
          credit[i] = c;
        }
        slot = (slot + 1) % slots;
      } else {
        for (const s of this.sensors) this.saturateOne(s);
      }
      if (load.onProgress && now >= nextProgress) {
        const dt = (now - lastProgress.at) / 1000;
        load.onProgress(this.progress('running', (this.eventsSent - lastProgress.sent) / dt, (this.eventsAcked - lastProgress.acked) / dt));
        lastProgress = { at: now, sent: this.eventsSent, acked: this.eventsAcked };
        nextProgress = now + load.progressIntervalMs;
      }
      const pause = perSensorEps > 0 ? slotMs : load.tickMs;
      await new Promise((r) => setTimeout(r, Math.max(1, pause - (Date.now() - now))));
    }
    this.saturateBatch = 0;
    this.loadEndedAt = Date.now();
  }

  /** Waits until every sent event is acknowledged, or the timeout. */
  async drain(timeoutMs: number): Promise<boolean> {
    return this.waitUntil(() => this.sensors.every((s) => s.inflight === 0 || !s.isOnline), timeoutMs);
  }

  /**
   * Drops every session at once (no close handshake) and reconnects all sensors immediately, without
   * pacing: returns the milliseconds until all are online again, or null on timeout.
   */
  async reconnectStorm(timeoutMs: number, onProgress?: (p: SimulationProgress) => void): Promise<number | null> {
    this.reconnecting = true;
    for (const s of this.sensors) s.terminate();
    await this.waitUntil(() => this.online === 0, 30_000);
    this.reconnecting = false;
    const started = Date.now();
    const progress = onProgress ? setInterval(() => onProgress(this.progress('storm', 0, 0)), 1000) : null;
    let inflight = 0;
    try {
      for (const s of this.sensors) {
        while (inflight >= this.options.connectConcurrency) await new Promise<void>((r) => this.connectWaiters.push(r));
        inflight++;
        void this.connectWithRetry(s).finally(() => {
          inflight--;
          this.connectWaiters.shift()?.();
        });
      }
      const ok = await this.waitUntil(() => this.online >= this.sensors.length, timeoutMs - (Date.now() - started));
      this.stormMs = ok ? Date.now() - started : null;
      return this.stormMs;
    } finally {
      if (progress) clearInterval(progress);
    }
  }

  /** Closes every session politely. */
  async close(): Promise<void> {
    this.stopping = true;
    for (const s of this.sensors) s.close();
    await this.waitUntil(() => this.online === 0, 10_000);
  }

  summary(): SimulationSummary {
    const durationS = this.loadStartedAt ? ((this.loadEndedAt || Date.now()) - this.loadStartedAt) / 1000 : 0;
    const rate = (n: number): number => (durationS > 0 ? Math.round(n / durationS) : 0);
    return {
      sensors: this.sensors.length,
      connected: this.everConnected.size,
      online_at_end: this.online,
      enrolled: this.sensors.filter((s) => s.sid !== null).length,
      connect_errors: this.connectErrors,
      disconnects: this.disconnects,
      all_online_ms: this.allOnlineMs,
      reconnect_storm_ms: this.stormMs,
      duration_s: Math.round(durationS * 100) / 100,
      eps_target: this.epsTarget,
      events_sent: this.eventsSent,
      events_acked: this.eventsAcked,
      events_unacked: this.sensors.reduce((n, s) => n + s.unackedEvents, 0),
      events_deferred: this.eventsDeferred,
      batches_sent: this.batchesSent,
      batches_resent: this.sensors.reduce((n, s) => n + s.resentBatches, 0),
      backoffs: this.sensors.reduce((n, s) => n + s.backoffs, 0),
      eps_sent: rate(this.eventsSent),
      eps_acked: rate(this.eventsAcked),
      mean_event_bytes: this.mix.meanEventBytes,
      encoding: this.options.encoding,
      ack_latency_ms: this.ackLatency.summary(),
      connect_ms: this.connectLatency.summary(),
      errors: Object.fromEntries(this.errors),
    };
  }

  private saturateBatch = 0;

  private saturateOne(s: SimulatedSensor): void {
    if (this.saturateBatch <= 0) return;
    const now = Date.now();
    while (s.canSend(now)) {
      const events = this.nextBatch(s, Math.min(this.saturateBatch, s.maxBatchEvents), now);
      if (events.length === 0) return;
      s.send(events, now);
      this.eventsSent += events.length;
      this.batchesSent++;
    }
  }

  private nextBatch(s: SimulatedSensor, max: number, now: number): SensorEvent[] {
    return this.options.batchSource ? this.options.batchSource(s, max, now) : this.mix.batch(max, now);
  }

  private async connectWithRetry(sensor: SimulatedSensor): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      const t0 = Date.now();
      try {
        await sensor.connect();
        this.connectLatency.record(Date.now() - t0);
        this.online++;
        this.everConnected.add(sensor.index);
        if (this.saturateBatch > 0) this.saturateOne(sensor);
        return;
      } catch (err) {
        this.connectErrors++;
        this.countError((err as Error).message);
        const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private countError(kind: string): void {
    const key = kind.slice(0, 120);
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }

  /** Counters now, for a progress display. */
  snapshot(phase: SimulationProgress['phase']): SimulationProgress {
    return this.progress(phase, 0, 0);
  }

  private progress(phase: SimulationProgress['phase'], epsSent: number, epsAcked: number): SimulationProgress {
    return {
      phase,
      elapsedS: Math.round((Date.now() - this.startedAt) / 100) / 10,
      online: this.online,
      sensors: this.sensors.length,
      eventsSent: this.eventsSent,
      eventsAcked: this.eventsAcked,
      epsSent: Math.round(epsSent),
      epsAcked: Math.round(epsAcked),
      errors: this.connectErrors + this.disconnects,
    };
  }

  private async waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + Math.max(0, timeoutMs);
    while (!check()) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }
}
