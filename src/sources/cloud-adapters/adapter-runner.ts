// Runs one cloud adapter: connects its sensor, starts its source, and keeps its health. Sources report
// each attempt (succeeded / failed); a failure is recorded as the organization's component error
// `cloud_adapters/<name>` and retried with backoff; once the adapter has been failing for longer than its
// grace period the runner asks for it to be disabled (the manager does it, exactly once).
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import type { Logger } from '../../observability/logger.js';
import type { CloudAdapterRuntimeStatus } from '../../services/cloud-adapter-control.js';
import { AdapterHealth, type RetryPolicy } from './adapter-health.js';
import { AdapterSensor, type AdapterPipeline } from './adapter-sensor.js';

/** What a source gets from its runner. */
export interface AdapterContext {
  readonly config: CloudAdapterConfig;
  readonly sensor: AdapterSensor;
  readonly pipeline: AdapterPipeline;
  readonly logger: Logger;
  /** Aborted when the adapter stops. */
  readonly signal: AbortSignal;
  /** An attempt worked (a poll, a bind, a delivery) and stored `events` events. */
  succeeded(events: number): void;
  /** An attempt failed; returns how long to wait before the next one, ms. */
  failed(error: string): number;
  /** Waits `ms`, or less when the adapter stops. */
  wait(ms: number): Promise<void>;
}

/** One adapter type's way of getting records: started once the sensor is connected, stopped on shutdown. */
export interface AdapterSource {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export type SourceFactory = (ctx: AdapterContext) => AdapterSource;

export interface RunnerOptions {
  pipeline: AdapterPipeline;
  logger: Logger;
  retry: RetryPolicy;
  defaultGraceMs: number;
  /** Called once when the grace period is over, with the last error. */
  onExpired: (config: CloudAdapterConfig, error: string) => void;
}

const ALIVE_EVERY_MS = 60_000;

export const componentOf = (name: string): string => `cloud_adapters/${name}`;

export class AdapterRunner implements AdapterContext {
  readonly sensor: AdapterSensor;
  readonly logger: Logger;
  readonly pipeline: AdapterPipeline;
  private readonly health: AdapterHealth;
  private readonly abort = new AbortController();
  private source: AdapterSource | undefined;
  private running: Promise<void> | undefined;
  private expired = false;
  private events = 0;
  private aliveAt = 0;

  constructor(
    readonly config: CloudAdapterConfig,
    private readonly createSource: SourceFactory,
    private readonly options: RunnerOptions,
  ) {
    this.pipeline = options.pipeline;
    this.sensor = new AdapterSensor(config, options.pipeline);
    this.logger = options.logger.child({ oid: config.oid, cloud_adapter: config.name, type: config.type });
    const graceMs = config.grace_period !== null ? config.grace_period * 1000 : options.defaultGraceMs;
    this.health = new AdapterHealth(options.retry, graceMs, options.pipeline.now);
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The source, once the sensor is connected and it was started. */
  get activeSource(): AdapterSource | undefined {
    return this.source;
  }

  start(): void {
    this.running = this.run();
  }

  private async run(): Promise<void> {
    while (!this.signal.aborted) {
      try {
        await this.sensor.connect();
        break;
      } catch (err) {
        if (this.signal.aborted) return;
        await this.wait(this.failed(`could not start the adapter's sensor: ${(err as Error).message}`));
      }
    }
    if (this.signal.aborted) return;
    this.source = this.createSource(this);
    await this.source.start();
  }

  async stop(reason: string): Promise<void> {
    this.abort.abort();
    await this.running;
    await this.source?.stop();
    try {
      await this.sensor.disconnect(reason);
    } catch (err) {
      this.logger.warn({ err }, 'could not record DISCONNECTED of a cloud adapter');
    }
  }

  succeeded(events: number): void {
    this.events += events;
    // Last seen (schedule eligibility, sensors list), written at most once a minute.
    const at = this.pipeline.now();
    if (at - this.aliveAt >= ALIVE_EVERY_MS) {
      this.aliveAt = at;
      this.pipeline.store.touchAlive([{ sid: this.sensor.sid, alive: at }]).catch((err: unknown) => this.logger.warn({ err }, 'could not record a cloud adapter as alive'));
    }
    if (this.health.failingSince !== null) {
      this.logger.info({ failures: this.health.failures }, 'cloud adapter recovered');
      this.pipeline.store.clearOrgError(this.config.oid, componentOf(this.config.name)).catch((err: unknown) => this.logger.warn({ err }, 'could not clear a cloud adapter error'));
    }
    this.health.succeeded();
  }

  failed(error: string): number {
    const { retryInMs, expired } = this.health.failed(error);
    this.logger.warn({ error, failures: this.health.failures, retry_in_ms: Math.round(retryInMs) }, 'cloud adapter failed');
    this.pipeline.store
      .recordOrgError({ oid: this.config.oid, component: componentOf(this.config.name), error, at: this.health.lastErrorAt ?? this.pipeline.now() })
      .catch((err: unknown) => this.logger.warn({ err }, 'could not record a cloud adapter error'));
    if (expired && !this.expired) {
      this.expired = true;
      this.options.onExpired(this.config, error);
    }
    return retryInMs;
  }

  async wait(ms: number): Promise<void> {
    if (this.signal.aborted) return;
    await sleep(ms, undefined, { signal: this.signal }).catch(() => undefined);
  }

  status(): CloudAdapterRuntimeStatus {
    const h = this.health;
    return {
      state: h.failingSince !== null ? 'retrying' : 'running',
      sid: this.sensor.sid,
      failing_since: h.failingSince,
      failures: h.failures,
      last_error: h.lastError,
      last_error_at: h.lastErrorAt,
      events: this.events,
    };
  }
}
