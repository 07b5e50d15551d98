// Runs this node's cloud adapters (docs/cloud-adapters.md): one AdapterRunner per enabled adapter, started
// from the store on boot and restarted when the API changes it. Disables, exactly once, an adapter that
// has been failing for longer than its grace period: the store flips it (a conditional update, so only
// one caller wins) and the winner emits `cloud_adapter_disabled {error}` into the deployment stream.
// In a cluster each adapter runs on one node (Placement: the lease `cloud_adapter:<oid>/<name>`); every
// rebalance round re-reads the store, so changes made through any node's API reach the node running it
// (the adapters' configurations, and the tags of their sensors).
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import type { TagState } from '../../domain/records.js';
import type { Logger } from '../../observability/logger.js';
import { LOCAL_PLACEMENT, type Placement } from '../../services/placement.js';
import type { CloudAdapterDirectory, CloudAdapterEntry } from '../../services/cloud-adapter-directory.js';
import type { CloudAdapterControl, CloudAdapterDefinition, CloudAdapterRuntimeStatus, WebhookOutcome, WebhookPost, WebhookRelay } from '../../services/cloud-adapter-control.js';
import { cloudAdapterView, parseCloudAdapter, type HttpPollerSettings, type SyslogSettings, type WebhookSettings } from './adapter-config.js';
import { cloudAdapterDisabledEvent } from './adapter-events.js';
import type { RetryPolicy } from './adapter-health.js';
import { AdapterRunner, type AdapterContext, type AdapterSource } from './adapter-runner.js';
import { cloudAdapterSid, type AdapterPipeline } from './adapter-sensor.js';
import { HttpPoller } from './http-poller.js';
import { SyslogReceiver } from './syslog-receiver.js';
import { secretMatches, WebhookReceiver } from './webhook-receiver.js';

export interface CloudAdapterManagerOptions {
  pipeline: AdapterPipeline;
  logger: Logger;
  retry: RetryPolicy;
  /** Grace period of adapters that set none, ms. */
  defaultGraceMs: number;
  /** Where each adapter runs (a cluster); default: here. */
  placement?: Placement;
  /** A cluster's webhook forwarding to the node running the adapter. */
  webhooks?: WebhookRelay;
}

/** A running adapter as other services see it (e.g. schedule events per cloud adapter). */
export interface RunningCloudAdapter {
  oid: string;
  name: string;
  type: CloudAdapterConfig['type'];
  sid: string;
  platform: CloudAdapterConfig['platform'];
  hostname: string;
}

const keyOf = (oid: string, name: string): string => `${oid}/${name}`;
const leaseOf = (key: string): string => `cloud_adapter:${key}`;

function createSource(ctx: AdapterContext): AdapterSource {
  const { type, settings } = ctx.config;
  switch (type) {
    case 'webhook':
      return new WebhookReceiver(settings as unknown as WebhookSettings, ctx);
    case 'http_poller':
      return new HttpPoller(settings as unknown as HttpPollerSettings, ctx);
    case 'syslog':
      return new SyslogReceiver(settings as unknown as SyslogSettings, ctx);
  }
}

export class CloudAdapterManager implements CloudAdapterControl, CloudAdapterDirectory {
  private readonly runners = new Map<string, AdapterRunner>();
  /** Stops receiving forwarded webhook posts, per webhook adapter running here (cluster). */
  private readonly serving = new Map<string, () => void>();
  private stopped = false;
  private readonly placement: Placement;
  private rebalanceTimer: NodeJS.Timeout | null = null;
  private rebalancing: Promise<void> = Promise.resolve();

  constructor(private readonly options: CloudAdapterManagerOptions) {
    this.placement = options.placement ?? LOCAL_PLACEMENT;
  }

  async start(): Promise<void> {
    for (const config of await this.options.pipeline.store.listCloudAdapters()) await this.apply(config);
    this.placement.onLost(() => {
      this.options.logger.warn({ adapters: this.runners.size }, 'lost the cloud adapter leases; stopping them here');
      for (const key of [...this.runners.keys()]) void this.halt(key, 'lease lost');
    });
    if (this.placement.rebalanceMs > 0) {
      this.rebalanceTimer = setInterval(() => {
        this.rebalancing = this.rebalancing.then(() => this.rebalance()).catch((err: unknown) => this.options.logger.warn({ err }, 'cloud adapter rebalance failed'));
      }, this.placement.rebalanceMs);
      this.rebalanceTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.rebalanceTimer) clearInterval(this.rebalanceTimer);
    await this.rebalancing;
    const keys = [...this.runners.keys()];
    await Promise.all(keys.map((key) => this.halt(key, 'shutdown')));
    await Promise.all(keys.map((key) => this.placement.release(leaseOf(key)).catch(() => undefined)));
  }

  /** A cluster's round: take adapters nobody runs, follow changes made elsewhere, let go of what moved. */
  private async rebalance(): Promise<void> {
    if (this.stopped) return;
    const configs = await this.options.pipeline.store.listCloudAdapters();
    const present = new Set<string>();
    for (const config of configs) {
      const key = keyOf(config.oid, config.name);
      present.add(key);
      const runner = this.runners.get(key);
      if (runner && !this.placement.keep(leaseOf(key))) {
        await this.halt(key, 'moved');
      } else if (runner ? JSON.stringify(runner.config) !== JSON.stringify(config) : config.enabled) {
        await this.apply(config);
      }
    }
    for (const key of [...this.runners.keys()]) {
      if (present.has(key)) continue;
      await this.halt(key, 'deleted');
      await this.placement.release(leaseOf(key));
    }
    await this.refreshTags();
  }

  /** Tags changed through another node's API: each adapter running here carries them from now on. */
  async refreshTags(): Promise<void> {
    for (const runner of this.runners.values()) await runner.sensor.refreshTags();
  }

  parse(raw: Record<string, unknown>): CloudAdapterDefinition {
    return parseCloudAdapter(raw);
  }

  view(config: CloudAdapterConfig): Record<string, unknown> {
    return cloudAdapterView(config);
  }

  async apply(config: CloudAdapterConfig): Promise<void> {
    const key = keyOf(config.oid, config.name);
    await this.halt(key, 'restart');
    if (!config.enabled || this.stopped) return;
    if (!(await this.placement.claim(leaseOf(key)))) return;
    if (this.placement.rebalanceMs > 0) this.options.logger.info({ oid: config.oid, cloud_adapter: config.name }, 'cloud adapter runs on this node');
    const runner = new AdapterRunner(config, createSource, {
      pipeline: this.options.pipeline, logger: this.options.logger, retry: this.options.retry, defaultGraceMs: this.options.defaultGraceMs,
      onExpired: (c, error) => void this.disable(c, error),
    });
    this.runners.set(key, runner);
    runner.start();
    if (config.type === 'webhook' && this.options.webhooks) this.serving.set(key, this.options.webhooks.serve(config.oid, config.name, (post) => this.receiveHere(post)));
  }

  async remove(oid: string, name: string): Promise<void> {
    await this.halt(keyOf(oid, name), 'deleted');
    await this.placement.release(leaseOf(keyOf(oid, name)));
  }

  status(oid: string, name: string): CloudAdapterRuntimeStatus | undefined {
    const runner = this.runners.get(keyOf(oid, name));
    if (!runner) return undefined;
    const status = runner.status();
    return runner.sensor.connected || status.state === 'retrying' ? status : { ...status, state: 'starting' };
  }

  tagsChanged(sid: string, tags: ReadonlyArray<TagState>): void {
    for (const runner of this.runners.values()) if (runner.sensor.sid === sid) runner.sensor.setTags(tags);
  }

  /** The adapters running on this node. */
  running(): RunningCloudAdapter[] {
    return [...this.runners.values()].map((runner) => {
      const c = runner.config;
      return { oid: c.oid, name: c.name, type: c.type, sid: cloudAdapterSid(c.oid, c.name), platform: c.platform, hostname: c.hostname };
    });
  }

  /** The organization's enabled adapters, whichever node runs them (schedule events per cloud adapter). */
  async list(oid: string): Promise<CloudAdapterEntry[]> {
    const configs = await this.options.pipeline.store.listCloudAdapters(oid);
    return configs
      .filter((c) => c.enabled)
      .map((c) => ({ adapter_name: c.name, sid: cloudAdapterSid(c.oid, c.name), platform: c.platform, hostname: c.hostname, adapter_type: c.type }));
  }

  async receiveWebhook(post: WebhookPost): Promise<WebhookOutcome> {
    const key = keyOf(post.oid.toLowerCase(), post.name);
    if (!this.runners.has(key) && this.options.webhooks) {
      const forwarded = await this.options.webhooks.forward(post);
      if (forwarded) return forwarded;
    }
    return this.receiveHere(post);
  }

  /** A webhook post for an adapter of this node (never forwarded again). */
  private async receiveHere(post: WebhookPost): Promise<WebhookOutcome> {
    const oid = post.oid.toLowerCase();
    const runner = this.runners.get(keyOf(oid, post.name));
    const config = runner?.config ?? (await this.options.pipeline.store.getCloudAdapter(oid, post.name));
    // No such webhook and a wrong secret get the same answer, so adapter names are not revealed.
    if (config?.type !== 'webhook' || !secretMatches(config.settings as unknown as WebhookSettings, post.secret)) return { status: 'unauthorized' };
    if (!config.enabled) return { status: 'disabled' };
    const source = runner?.activeSource;
    if (!(source instanceof WebhookReceiver)) return { status: 'unavailable' };
    return source.receive(post);
  }

  private async halt(key: string, reason: string): Promise<void> {
    const runner = this.runners.get(key);
    if (!runner) return;
    this.runners.delete(key);
    this.serving.get(key)?.();
    this.serving.delete(key);
    await runner.stop(reason);
  }

  private async disable(config: CloudAdapterConfig, error: string): Promise<void> {
    const { store, submit, now } = this.options.pipeline;
    const log = this.options.logger.child({ oid: config.oid, cloud_adapter: config.name });
    try {
      const at = now();
      if (await store.disableCloudAdapter(config.oid, config.name, at, error)) {
        await submit([cloudAdapterDisabledEvent(config.oid, error, at)]);
        log.warn({ error }, 'cloud adapter disabled: it kept failing for longer than its grace period');
      }
      const key = keyOf(config.oid, config.name);
      // Only the runner of this configuration: a newer one (re-enabled meanwhile) keeps running.
      if (this.runners.get(key)?.config === config) await this.halt(key, 'disabled');
    } catch (err) {
      log.error({ err }, 'could not disable a failing cloud adapter');
    }
  }
}
