// Runs one OutputWorker per configured output on this node: starts them from the store, replaces a
// worker when its output is reconfigured, stops it when the output is deleted, and wakes the workers of
// an organization and stream when the bus says new events are stored. In a cluster each output runs on
// the one node holding its lease (Placement); every `rebalanceMs` a node takes the outputs it should run,
// gives up those it should not, and restarts those reconfigured through another node's API.
import type { BusEvent, EventBus } from '../../bus/event-bus.js';
import type { OutputConfig } from '../../domain/outputs.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { OutputDefinitionError, type OutputControl, type OutputDefinition } from '../../services/output-control.js';
import type { Store } from '../../store/store.js';
import type { OutputModuleDescriptor } from './module-descriptor.js';
import { outputView, parseOutputInput } from './output-config.js';
import { OutputConfigError, type OutputModule, type OutputRecord } from './output-module.js';
import { OutputWorker, type DeliveryPolicy, type OutputStatus } from './output-worker.js';
import type { OutputUsage } from '../../services/usage-meter.js';
import { LOCAL_PLACEMENT, type Placement } from '../../services/placement.js';
import { StoreOutputQueues, type OutputQueues } from './output-queue.js';

export interface OutputManagerDeps {
  store: Store;
  bus: EventBus;
  metrics: Metrics;
  logger: Logger;
  modules: ReadonlyMap<string, OutputModuleDescriptor>;
  dataDir: string;
  policy: DeliveryPolicy;
  now: () => number;
  /** Usage metering of bytes delivered (billing). */
  usage?: OutputUsage;
  /** Where workers read (default: the event log in the store). */
  queues?: OutputQueues;
  /** Which outputs this node runs (default: all of them). */
  placement?: Placement;
}

const key = (oid: string, name: string): string => `${oid}/${name}`;
const leaseOf = (oid: string, name: string): string => `output:${oid}/${name}`;

export class OutputManager implements OutputControl {
  private readonly workers = new Map<string, OutputWorker>();
  private unsubscribe: (() => void) | null = null;
  private lagTimer: NodeJS.Timeout | null = null;
  private rebalanceTimer: NodeJS.Timeout | null = null;
  private rebalancing: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly queues: OutputQueues;
  private readonly placement: Placement;

  constructor(private readonly deps: OutputManagerDeps) {
    this.queues = deps.queues ?? new StoreOutputQueues(deps.store);
    this.placement = deps.placement ?? LOCAL_PLACEMENT;
  }

  async start(): Promise<void> {
    this.unsubscribe = this.deps.bus.subscribe((events) => this.onStored(events));
    for (const config of await this.deps.store.listOutputs()) await this.run(config);
    this.placement.onLost(() => void this.dropAll());
    if (this.placement.rebalanceMs > 0) {
      this.rebalanceTimer = setInterval(() => {
        this.rebalancing = this.rebalancing.then(() => this.rebalance()).catch((err: unknown) => this.deps.logger.warn({ err }, 'output rebalance failed'));
      }, this.placement.rebalanceMs);
      this.rebalanceTimer.unref();
    }
    // A worker measures its lag between batches; a slow destination can hold one batch for minutes, so
    // the gauge is also refreshed here.
    this.lagTimer = setInterval(() => void this.refreshLag(), 1000);
    this.lagTimer.unref();
  }

  private async refreshLag(): Promise<void> {
    if (this.workers.size === 0) return;
    try {
      const last = await this.deps.store.lastLogSeq();
      for (const w of this.workers.values()) this.deps.metrics.outputLag.set({ oid: w.config.oid, output: w.config.name }, w.pendingEstimate() ?? Math.max(0, last - w.position));
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not measure output lag');
    }
  }

  parse(raw: Record<string, unknown>): OutputDefinition {
    let definition: OutputDefinition;
    try {
      definition = parseOutputInput(raw, this.deps.modules);
    } catch (err) {
      if (err instanceof OutputConfigError) throw new OutputDefinitionError(err.message, err.field);
      throw err;
    }
    // The module checks what only it can (a URL's scheme, a path's place, ...), without connecting.
    try {
      void this.createModule({ oid: '', ...definition }).close();
    } catch (err) {
      throw new OutputDefinitionError((err as Error).message, 'module');
    }
    return definition;
  }

  view(config: OutputConfig): Record<string, unknown> {
    return outputView(config, this.deps.modules.get(config.module));
  }

  /** Builds the module of a configuration (throws when its fields cannot work). */
  createModule(config: Pick<OutputConfig, 'oid' | 'name' | 'module' | 'fields'>): OutputModule {
    const descriptor = this.deps.modules.get(config.module);
    if (!descriptor) throw new Error(`unknown output module "${config.module}"`);
    return descriptor.create({ name: config.name, oid: config.oid, fields: config.fields, dataDir: this.deps.dataDir });
  }

  /** The output was created or replaced through the API: its queue starts now; it runs where it is placed. */
  async apply(config: OutputConfig): Promise<void> {
    await this.queues.prepare(config);
    await this.run(config);
  }

  /** Starts (or restarts, with this configuration) the output's worker, if this node is the one to run it. */
  private async run(config: OutputConfig): Promise<void> {
    await this.halt(config.oid, config.name);
    if (this.stopped) return;
    if (!(await this.placement.claim(leaseOf(config.oid, config.name)))) return;
    let module: OutputModule;
    try {
      module = this.createModule(config);
    } catch (err) {
      this.deps.logger.error({ err, oid: config.oid, output: config.name }, 'output cannot start');
      await this.deps.store.recordOrgError({ oid: config.oid, component: `outputs/${config.name}`, error: `cannot start: ${(err as Error).message}`, at: this.deps.now() });
      return;
    }
    const worker = new OutputWorker(config, module, {
      store: this.deps.store, queue: this.queues.open(config), metrics: this.deps.metrics, logger: this.deps.logger, now: this.deps.now, policy: this.deps.policy, usage: this.deps.usage,
    });
    this.workers.set(key(config.oid, config.name), worker);
    if (this.placement.rebalanceMs > 0) this.deps.logger.info({ oid: config.oid, output: config.name }, 'output delivery runs on this node');
    worker.start();
  }

  /** The output was deleted through the API. */
  async remove(oid: string, name: string): Promise<void> {
    await this.halt(oid, name);
    await this.placement.release(leaseOf(oid, name));
    await this.queues.discard({ oid, name });
  }

  /** Stops the output's worker on this node (its lease, if any, is kept). */
  private async halt(oid: string, name: string): Promise<void> {
    const worker = this.workers.get(key(oid, name));
    if (!worker) return;
    this.workers.delete(key(oid, name));
    await worker.stop();
  }

  /** Takes the outputs this node should run, gives up the others, follows changes made through other nodes. */
  private async rebalance(): Promise<void> {
    if (this.stopped) return;
    const configs = await this.deps.store.listOutputs();
    const wanted = new Map(configs.map((c) => [key(c.oid, c.name), c]));
    for (const [k, worker] of [...this.workers]) {
      const config = wanted.get(k);
      const { oid, name } = worker.config;
      if (!config || !this.placement.keep(leaseOf(oid, name))) {
        await this.halt(oid, name);
        await this.placement.release(leaseOf(oid, name));
      } else if (config.updated !== worker.config.updated) {
        this.deps.logger.info({ oid, output: name }, 'output reconfigured elsewhere in the cluster; restarting it here');
        await this.run(config);
      }
    }
    for (const [k, config] of wanted) {
      if (this.stopped) return;
      if (!this.workers.has(k)) await this.run(config);
    }
    this.deps.metrics.leasesHeld.set({ kind: 'output' }, this.workers.size);
  }

  /** Every lease is gone (the lease connection dropped): stop at once, another node may be taking over. */
  private async dropAll(): Promise<void> {
    const all = [...this.workers.values()];
    this.workers.clear();
    if (all.length > 0) this.deps.logger.warn({ outputs: all.length }, 'lost the output leases; stopping their delivery here');
    await Promise.all(all.map((w) => w.stop()));
  }

  status(oid: string, name: string): OutputStatus | undefined {
    return this.workers.get(key(oid, name))?.status();
  }

  /**
   * Sends one test record through a fresh instance of the output's module (not through its queue) and
   * reports the destination's answer.
   */
  async testSend(config: OutputConfig): Promise<{ ok: true } | { ok: false; error: string }> {
    let module: OutputModule | null = null;
    try {
      module = this.createModule(config);
      const now = this.deps.now();
      const body = {
        routing: { oid: config.oid, event_type: 'picket_test', event_time: now, event_id: crypto.randomUUID() },
        event: { message: `test record from Picket for output "${config.name}"`, ts: Math.floor(now / 1000) },
      };
      const record: OutputRecord = { seq: 0, oid: config.oid, sid: null, event_type: 'picket_test', event_time: now, body, json: JSON.stringify(body) };
      await module.send([record]);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    } finally {
      await module?.close().catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.lagTimer) clearInterval(this.lagTimer);
    if (this.rebalanceTimer) clearInterval(this.rebalanceTimer);
    await this.rebalancing;
    const all = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(all.map((w) => w.stop()));
    await Promise.all(all.map((w) => this.placement.release(leaseOf(w.config.oid, w.config.name)).catch(() => undefined)));
  }

  private onStored(events: ReadonlyArray<BusEvent>): void {
    if (this.workers.size === 0) return;
    const touched = new Set<string>();
    for (const e of events) touched.add(`${e.oid}/${e.stream}`);
    for (const worker of this.workers.values()) {
      if (touched.has(`${worker.config.oid}/${worker.config.stream}`)) worker.wake();
    }
  }
}
