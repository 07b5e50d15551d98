// The reference sensor: keeps one session to the cloud alive (reconnecting with backoff), delivers every
// event at least once through its bounded buffer, and reports its own lifecycle: STARTING_UP once per
// process, SYNC on the cloud's interval, DATA_DROPPED after losses, SHUTTING_DOWN on a graceful stop.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { cloudNotification, dataDropped, isCloudProduced, lookupEvent, shuttingDown, startingUp, sync, validatePayload } from '../catalogue/index.js';
import { CommandRunner, loadSensorConfig, type SelfTestCheck } from './commands/command-runner.js';
import { ingestUrlOf } from './commands/artifact-upload.js';
import { ERROR } from './commands/error-codes.js';
import { NftIsolation, type NetworkIsolation } from './commands/network-isolation.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import { CloseCode, FATAL_CLOSE_CODES } from '../protocol/close-codes.js';
import type { Encoding } from '../protocol/codec.js';
import type { CrashReport, HostInfo, SensorEvent, TaskMessage, WelcomeMessage } from '../protocol/messages.js';
import { CrashFile } from './crash-record.js';
import { crashOnPurpose, type DebugCrashMode } from './debug-crash.js';
import { EventBuffer, type DropReport } from './event-buffer.js';
import { collectHostInfo } from './host-info.js';
import { IdentityFile, type SensorIdentity } from './identity-file.js';
import { ReconnectPolicy, parseRetryAfterMs, type ReconnectPolicyOptions } from './reconnect-policy.js';
import { SensorConnection, gatewayUrl, type SensorAuth, type SessionEnd } from './sensor-connection.js';

export interface ReferenceSensorOptions {
  /** Directory of the sensor's state (identity.json). */
  stateDir: string;
  /** Cloud URL (http, https, ws or wss; /sensor is added when missing). Defaults to the URL enrolled with. */
  url?: string;
  /** Installation key; needed only to enroll (no identity yet, or a re-enroll order). */
  installationKey?: string;
  /** Overrides the system host name. */
  hostname?: string;
  /** Overrides the host fingerprint (machine id and MAC hash), e.g. for VDI clones. */
  fingerprint?: string;
  /** Host description sent in hello; collected from the system when omitted. */
  host?: HostInfo;
  encoding?: Encoding;
  /** Offline buffer bounds: events and bytes (reference: 100,000 and 64 MiB). */
  bufferEvents?: number;
  bufferBytes?: number;
  /** Most unacknowledged batches in flight (reference: 16). */
  maxInflightBatches?: number;
  /** Extra CA certificate (PEM) trusted for wss. */
  ca?: string | Buffer;
  logger?: Logger;
  reconnect?: Partial<ReconnectPolicyOptions>;
  /** How long a graceful stop waits for the ack of SHUTTING_DOWN (reference: 5 s). */
  shutdownTimeoutMs?: number;
  /** A connection without welcome this long after the upgrade request is dropped. */
  welcomeTimeoutMs?: number;
  /** While connected, how often drops made meanwhile are reported as DATA_DROPPED. */
  dropReportIntervalMs?: number;
  /** While the sensor is deleted (4011), how long it waits between attempts (reference: 1 hour). */
  deniedRetryMs?: number;
  /** Debug switch: crash on purpose after the first welcome (protocol.md §3 "Crash reports"). */
  debugCrash?: DebugCrashMode;
  /** Allow the `run` command (shell commands from the cloud); off by default: RECEIPT ERROR 5. */
  allowRun?: boolean;
  /** Ingestion key of the organization ("<key_id>.<secret>"): lets artifact_get upload files; without it artifact_get answers ERROR 5. */
  ingestionKey?: string;
  /** How segregate_network / rejoin_network isolate the host (default: nftables on Linux). */
  isolation?: NetworkIsolation;
}

export const DEFAULT_DENIED_RETRY_MS = 3_600_000;

/** The sensor was refused in a way retrying cannot fix (protocol.md §9: 4001, 4003, 4011, …). */
export class SensorFatalError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'SensorFatalError';
  }
}

/** The sensor cannot start as configured (no key and no identity, no URL, unreadable identity). */
export class SensorConfigError extends Error {
  override name = 'SensorConfigError';
}

export interface EmitOptions {
  /** Unix ms; defaults to now. */
  eventTime?: number;
  investigation_id?: string;
  /** The task this event answers. */
  task_id?: string;
  this?: string;
  parent?: string;
  target?: string;
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

const EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;
const FATAL_HINTS: Record<number, string> = {
  [CloseCode.unsupportedVersion]: 'the cloud speaks no protocol version this sensor speaks: upgrade the sensor',
  [CloseCode.unauthorized]: 'the installation key is invalid, or this identity is unknown to the cloud: use a new key, or delete the identity file and enroll again',
};

const nowSec = (): number => Math.floor(Date.now() / 1000);

export class ReferenceSensor {
  /** This process's event stream (protocol.md §3): the buffer starts empty with every process. */
  readonly streamId = randomUUID();
  readonly buffer: EventBuffer;
  readonly identityFile: IdentityFile;
  readonly crashFile: CrashFile;
  private readonly log: Logger;
  private readonly policy: ReconnectPolicy;
  private readonly encoding: Encoding;
  private readonly maxInflight: number;
  private readonly shutdownTimeoutMs: number;
  private readonly welcomeTimeoutMs: number;
  private readonly dropReportIntervalMs: number;
  private readonly deniedRetryMs: number;
  private state: State = 'idle';
  /** A crash of a previous process, sent in every hello until a welcome arrives. */
  private pendingCrash: CrashReport | undefined;
  private readonly isolation: NetworkIsolation;
  private commands: CommandRunner | null = null;
  /** Tasks run one after the other, in the order they arrive. */
  private taskChain: Promise<void> = Promise.resolve();
  private syncIntervalOverrideS: number | undefined;
  private lastSkewMs = 0;
  private welcomeSyncS = 600;
  private identity: SensorIdentity | undefined;
  private url = '';
  private host: HostInfo | undefined;
  private connection: SensorConnection | null = null;
  private loop: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private dropTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  private readonly waiters = new Set<() => void>();
  private currentSid: string | undefined;
  private welcomes = 0;

  constructor(private readonly options: ReferenceSensorOptions) {
    this.log = options.logger ?? silentLogger();
    this.encoding = options.encoding ?? 'msgpack';
    this.maxInflight = options.maxInflightBatches ?? 16;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5000;
    this.welcomeTimeoutMs = options.welcomeTimeoutMs ?? 30_000;
    this.dropReportIntervalMs = options.dropReportIntervalMs ?? 10_000;
    this.buffer = new EventBuffer({ maxEvents: options.bufferEvents ?? 100_000, maxBytes: options.bufferBytes ?? 64 * 1024 * 1024 });
    this.policy = new ReconnectPolicy(options.reconnect);
    this.identityFile = new IdentityFile(options.stateDir);
    this.crashFile = new CrashFile(options.stateDir);
    this.deniedRetryMs = options.deniedRetryMs ?? DEFAULT_DENIED_RETRY_MS;
    this.isolation = options.isolation ?? new NftIsolation();
  }

  /** The sensor id, once known (from the identity file or the first welcome). */
  get sid(): string | undefined {
    return this.currentSid ?? this.identity?.sid;
  }

  /** True while a session is welcomed and open. */
  get isConnected(): boolean {
    return this.connection?.isOpen ?? false;
  }

  /** Sessions welcomed since start. */
  get sessions(): number {
    return this.welcomes;
  }

  get isRunning(): boolean {
    return this.state === 'running';
  }

  /**
   * Loads the identity, queues STARTING_UP and starts the connection loop. Resolves once started; the
   * returned `done` promise settles when the sensor stops (rejects with SensorFatalError when refused).
   */
  async start(): Promise<{ done: Promise<void> }> {
    if (this.state !== 'idle') throw new Error('the sensor was already started');
    this.identity = await this.identityFile.load();
    this.pendingCrash = this.crashFile.load(this.log);
    if (this.pendingCrash) this.log.warn({ crash_id: this.pendingCrash.crash_id, crashed_at: this.pendingCrash.crashed_at, message: this.pendingCrash.message }, 'the previous run crashed; reporting it to the cloud');
    if (!this.identity && !this.options.installationKey) {
      throw new SensorConfigError(`no sensor identity in ${this.identityFile.path} and no installation key: start the sensor with --key <installation key> to enroll it`);
    }
    const url = this.options.url ?? this.identity?.url;
    if (!url) throw new SensorConfigError('no cloud URL: start the sensor with --url <cloud url>');
    this.url = gatewayUrl(url);
    const host = this.options.host ?? collectHostInfo(this.options.hostname !== undefined ? { hostname: this.options.hostname } : {});
    // Isolation rules live in the kernel and outlive the process: hello tells the truth about them.
    const isolated = this.options.host ? host.is_segregated : await this.isolation.isIsolated();
    this.host = { ...host, is_segregated: isolated, ...(this.options.fingerprint !== undefined ? { fingerprint: this.options.fingerprint } : {}) };
    const config = await loadSensorConfig(this.options.stateDir);
    const syncInterval = config.collectors.sync?.interval_s;
    if (typeof syncInterval === 'number') this.syncIntervalOverrideS = syncInterval;
    const endpoint = new URL(this.url);
    this.commands = new CommandRunner({
      stateDir: this.options.stateDir,
      cloud: { host: endpoint.hostname.replace(/^\[|\]$/g, ''), port: Number(endpoint.port) || (endpoint.protocol === 'wss:' ? 443 : 80) },
      allowRun: this.options.allowRun === true,
      isolation: this.isolation,
      selfTest: () => this.selfTestChecks(),
      applyCollector: (name, c) => this.applyCollector(name, c),
      isolationChanged: (value) => {
        this.host = { ...this.host!, is_segregated: value };
      },
      ...(this.options.ingestionKey
        ? { artifacts: { ingestUrl: ingestUrlOf(this.url), ingestionKey: this.options.ingestionKey, identity: () => (this.identity ? { oid: this.identity.oid, sid: this.identity.sid } : null) } }
        : {}),
    });
    if (this.identity && this.options.installationKey) this.log.debug({ sid: this.identity.sid }, 'identity present: the installation key is kept for re-enrollment only');
    this.state = 'running';
    const ts = nowSec();
    this.emit('STARTING_UP', startingUp(ts));
    const loop = this.run().finally(() => this.cleanUp());
    // Callers who never look at `done` must not get an unhandled rejection.
    loop.catch(() => undefined);
    this.loop = loop;
    return { done: loop };
  }

  /**
   * Queues an event for delivery and returns its position in the buffer. Invalid events are refused
   * here, so that one bad event can never make the cloud refuse every batch after it.
   */
  emit(eventType: string, payload: Record<string, unknown>, options: EmitOptions = {}): number {
    return this.queue(eventType, payload, options, false);
  }

  private queue(eventType: string, payload: Record<string, unknown>, options: EmitOptions, overLimit: boolean): number {
    if (!EVENT_TYPE.test(eventType)) throw new TypeError(`invalid event type "${eventType}": expected [A-Za-z0-9_.:-]{1,64}`);
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new TypeError(`${eventType}: the payload must be an object`);
    if (isCloudProduced(eventType)) throw new TypeError(`${eventType} is produced by the cloud, not by sensors`);
    if (lookupEvent(eventType)) {
      const check = validatePayload(eventType, payload);
      if (!check.valid) {
        const first = check.errors[0];
        throw new TypeError(`${eventType}: invalid payload${first ? ` (${first.field}: ${first.message})` : ''}`);
      }
    }
    const event: SensorEvent = { event_type: eventType, event_time: Math.floor(options.eventTime ?? Date.now()), event: payload };
    if (options.investigation_id !== undefined) event.investigation_id = options.investigation_id;
    if (options.task_id !== undefined) event.task_id = options.task_id;
    if (options.this !== undefined) event.this = options.this;
    if (options.parent !== undefined) event.parent = options.parent;
    if (options.target !== undefined) event.target = options.target;
    const index = this.buffer.push(event, { overLimit });
    this.scheduleFlush();
    return index;
  }

  /**
   * Graceful stop: queues SHUTTING_DOWN, waits (bounded) for the cloud to acknowledge it, closes the
   * session with 1000. Resolves when the sensor has stopped; safe to call more than once.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state !== 'running') {
      this.state = 'stopped';
      await this.loop?.catch(() => undefined);
      return;
    }
    this.state = 'stopping';
    this.wakeUp?.();
    this.clearTimers();
    const index = this.emit('SHUTTING_DOWN', shuttingDown(nowSec()));
    const connection = this.connection;
    if (connection) {
      // Sent on this session (or right after its welcome); the session is closed once the cloud has stored it.
      const released = (): boolean => this.buffer.isReleased(index);
      await this.waitUntil(() => released() || this.connection !== connection, this.shutdownTimeoutMs);
      if (released()) this.log.debug('SHUTTING_DOWN acknowledged');
      else this.log.warn({ waited_ms: this.shutdownTimeoutMs, session_ended: this.connection !== connection }, 'SHUTTING_DOWN not acknowledged; closing anyway');
      await connection.close(CloseCode.normal, 'sensor shutting down');
    } else {
      this.log.info('not connected: stopping without delivering SHUTTING_DOWN');
    }
    await this.loop?.catch(() => undefined);
    this.state = 'stopped';
  }

  // ---- the connection loop ----

  private async run(): Promise<void> {
    while (this.state === 'running') {
      const connection = new SensorConnection({
        url: this.url,
        encoding: this.encoding,
        auth: this.auth(),
        host: this.host!,
        streamId: this.streamId,
        crash: this.pendingCrash,
        buffer: this.buffer,
        logger: this.log,
        maxInflightBatches: this.maxInflight,
        welcomeTimeoutMs: this.welcomeTimeoutMs,
        ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
        handlers: {
          welcome: (w) => this.onWelcome(w),
          acked: () => this.notify(),
          task: (t) => this.onTask(t),
        },
      });
      this.connection = connection;
      const end = await connection.done;
      this.connection = null;
      this.clearTimers();
      this.notify();
      if (end.localError) throw end.localError;
      // Enrolled by that hello but refused (over quota): the identity is ours now, exactly as from a welcome.
      if (end.identity && end.identity.sid !== this.identity?.sid) await this.adoptIdentity(end.identity);
      if (this.state !== 'running') {
        this.log.info({ code: end.code, reason: end.reason, retry_in_ms: null }, 'sensor disconnected');
        return;
      }
      this.policy.sessionEnded(end.uptimeMs);
      const reason = end.errorMessage ?? end.reason;
      if (FATAL_CLOSE_CODES.has(end.code)) {
        this.log.error({ code: end.code, reason, retry_in_ms: null }, 'sensor disconnected');
        throw new SensorFatalError(`the cloud refused the sensor (${end.code} ${reason}): ${FATAL_HINTS[end.code] ?? 'operator action needed'}`, end.code, reason);
      }
      if (end.reenroll) await this.dropIdentity();
      if (end.code === CloseCode.deleted) {
        // Deleted by an operator: stop hammering the cloud; come back rarely, in case of an undelete.
        const delay = this.policy.nextDelayMs(this.deniedRetryMs);
        this.log.warn({ code: end.code, reason, denied_for: end.deniedFor ?? null, retry_in_ms: delay, attempt: this.policy.attempts }, 'sensor deleted by an operator; retrying rarely until it is undeleted');
        await this.sleep(delay);
        continue;
      }
      const delay = this.policy.nextDelayMs(this.retryFloorMs(end));
      const level = end.welcomed ? 'info' : 'warn';
      this.log[level]({ code: end.code, reason, retry_in_ms: delay, attempt: this.policy.attempts }, 'sensor disconnected');
      await this.sleep(delay);
    }
  }

  private auth(): SensorAuth {
    if (this.identity) return { sid: this.identity.sid, secret: this.identity.secret };
    return { installation_key: this.options.installationKey! };
  }

  /** A delay the server asked for, or the policy's cap after being replaced (do not fight a clone). */
  private retryFloorMs(end: SessionEnd): number | undefined {
    const asked = end.retryAfterS !== undefined ? Math.round(end.retryAfterS * 1000) : (parseRetryAfterMs(end.errorMessage) ?? parseRetryAfterMs(end.reason));
    if (end.code === CloseCode.replaced) {
      this.log.warn('replaced by another session of this sensor: if that is unexpected, this identity is in use on another host (a clone)');
      return Math.max(asked ?? 0, this.options.reconnect?.capMs ?? 60_000);
    }
    return asked;
  }

  private async dropIdentity(): Promise<void> {
    if (!this.options.installationKey) {
      throw new SensorFatalError('the cloud ordered a re-enrollment, but the sensor has no installation key: restart it with --key <installation key>', CloseCode.reenroll, 're-enroll');
    }
    this.log.warn({ sid: this.sid }, 'dropping the identity to enroll again');
    await this.identityFile.remove();
    this.identity = undefined;
    this.currentSid = undefined;
  }

  /** Stores an identity handed over by the cloud, durably, before anything else: the secret is shown only once. */
  private async adoptIdentity(given: { oid: string; iid: string; sid: string; secret: string }): Promise<void> {
    const identity: SensorIdentity = { ...given, url: this.options.url ?? this.identity?.url ?? this.url };
    await this.identityFile.save(identity);
    this.identity = identity;
    this.log.info({ sid: identity.sid, oid: identity.oid, file: this.identityFile.path }, 'sensor enrolled');
  }

  private async onWelcome(welcome: WelcomeMessage): Promise<void> {
    if (welcome.identity) {
      await this.adoptIdentity(welcome.identity);
    } else if (this.identity && welcome.sid !== this.identity.sid) {
      this.log.warn({ sid: welcome.sid, identity_sid: this.identity.sid }, 'the cloud welcomed a different sid than the identity');
    }
    this.currentSid = welcome.sid;
    this.welcomes++;
    if (this.pendingCrash) {
      // The cloud has it now (it deduplicates by crash_id should this welcome have been the second one).
      this.log.info({ crash_id: this.pendingCrash.crash_id }, 'crash reported');
      this.crashFile.remove();
      this.pendingCrash = undefined;
    }
    if (this.options.debugCrash && this.welcomes === 1) {
      this.log.warn({ mode: this.options.debugCrash }, 'debug crash switch: crashing on purpose');
      crashOnPurpose(this.options.debugCrash);
    }
    const skew = typeof welcome.server_time === 'number' ? Date.now() - welcome.server_time : 0;
    if (Math.abs(skew) > 5 * 60_000) this.log.warn({ skew_ms: skew }, 'the local clock differs from the cloud clock by more than 5 minutes');
    this.log.info(
      { sid: welcome.sid, url: this.url, ack_seq: welcome.ack_seq, unacked_batches: this.buffer.unackedBatches.length, buffered_events: this.buffer.size },
      'sensor connected',
    );
    this.reportDrops();
    this.lastSkewMs = skew;
    this.welcomeSyncS = Math.max(1, Number(welcome.sync_interval_s) || 600);
    this.startSyncTimer();
    this.dropTimer = setInterval(() => this.reportDrops(), this.dropReportIntervalMs);
    this.notify();
  }

  private startSyncTimer(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    const seconds = this.syncIntervalOverrideS ?? this.welcomeSyncS;
    this.syncTimer = setInterval(() => this.emit('SYNC', sync(nowSec())), seconds * 1000);
  }

  private applyCollector(name: string, config: Record<string, unknown>): void {
    if (name === 'sync' && typeof config.interval_s === 'number') {
      this.syncIntervalOverrideS = config.interval_s;
      if (this.syncTimer) this.startSyncTimer();
    }
    this.log.info({ collector: name, config }, 'collector configuration updated');
  }

  /**
   * A task (protocol.md §6): CLOUD_NOTIFICATION first (refusing it with ERROR 87 when it expired or is
   * addressed to another sensor), then the command's result event; both carry the investigation id.
   */
  private onTask(task: TaskMessage): void {
    const options: EmitOptions = { task_id: task.task_id, ...(task.investigation_id !== undefined ? { investigation_id: task.investigation_id } : {}) };
    const expired = typeof task.expiry === 'number' && task.expiry > 0 && task.expiry < nowSec();
    const elsewhere = typeof task.sid === 'string' && this.sid !== undefined && task.sid.toLowerCase() !== this.sid;
    const refusal = elsewhere ? `task addressed to sensor ${task.sid}` : expired ? `task expired at ${new Date(task.expiry * 1000).toISOString()}` : undefined;
    const name = String(task.command ?? '').trim().split(/\s+/)[0] ?? '';
    this.log.info({ task_id: task.task_id, command: name, investigation_id: task.investigation_id, refused: refusal ?? null }, 'task received');
    const identity = this.identity;
    this.queue('CLOUD_NOTIFICATION', cloudNotification({
      notificationId: name.slice(0, 64) || 'unknown',
      notification: task.investigation_id !== undefined ? { INVESTIGATION_ID: task.investigation_id } : {},
      oid: identity?.oid ?? '', sid: this.sid ?? '', iid: identity?.iid ?? null, plat: this.host?.plat ?? 0, arch: this.host?.arch ?? 0,
      expiry: typeof task.expiry === 'number' ? task.expiry : 0,
      ...(refusal ? { error: ERROR.INVALID_PARAMETER, errorMessage: refusal } : {}),
    }) as unknown as Record<string, unknown>, options, false);
    if (refusal || !this.commands) return;
    const commands = this.commands;
    this.taskChain = this.taskChain.then(async () => {
      const answer = await commands.execute(String(task.command));
      this.log.info({ task_id: task.task_id, event_type: answer.eventType, error: answer.payload.ERROR }, 'task answered');
      this.queue(answer.eventType, answer.payload, options, false);
    }).catch((err: unknown) => this.log.error({ err, task_id: task.task_id }, 'task failed'));
  }

  /** The checks `selftest` runs and reports in SELF_TEST_RESULT. */
  private async selfTestChecks(): Promise<SelfTestCheck[]> {
    const checks: SelfTestCheck[] = [];
    const check = async (name: string, fn: () => Promise<string> | string): Promise<void> => {
      try {
        checks.push({ name, ok: true, detail: await fn() });
      } catch (err) {
        checks.push({ name, ok: false, detail: (err as Error).message });
      }
    };
    await check('identity', async () => {
      const identity = await this.identityFile.load();
      if (!identity) throw new Error(`no identity in ${this.identityFile.path}`);
      return `sid ${identity.sid} in ${this.identityFile.path}`;
    });
    await check('state_dir_writable', async () => {
      const probe = path.join(this.options.stateDir, `.selftest-${process.pid}`);
      await fs.writeFile(probe, 'ok', { mode: 0o600 });
      await fs.rm(probe, { force: true });
      return this.options.stateDir;
    });
    await check('event_buffer', () => {
      const size = this.buffer.size;
      if (size >= (this.options.bufferEvents ?? 100_000)) throw new Error(`full: ${size} events`);
      return `${size} events buffered, ${this.buffer.unackedBatches.length} batches unacknowledged`;
    });
    await check('clock', () => {
      if (Math.abs(this.lastSkewMs) > 5 * 60_000) throw new Error(`local clock off the cloud's by ${Math.round(this.lastSkewMs / 1000)} s`);
      return `within ${Math.round(Math.abs(this.lastSkewMs))} ms of the cloud`;
    });
    await check('cloud_connection', () => {
      if (!this.isConnected) throw new Error('not connected');
      return this.url;
    });
    await check('network_isolation', async () => {
      const readiness = (await this.isolation.readiness?.()) ?? { ready: false, detail: 'the isolation backend cannot tell whether it works' };
      const host = `host ${(await this.isolation.isIsolated()) ? 'isolated' : 'not isolated'}`;
      if (!readiness.ready) throw new Error(`${readiness.detail}; ${host}`);
      return `${readiness.detail}; ${host}`;
    });
    return checks;
  }

  /** Queues DATA_DROPPED when the buffer lost events since the last report (decisions.md §6: never silent). */
  private reportDrops(): void {
    const report: DropReport | undefined = this.buffer.takeDropReport();
    if (!report) return;
    this.log.warn({ dropped_events: report.droppedEvents, dropped_bytes: report.droppedBytes, since_ms: report.sinceMs }, 'the event buffer overflowed; reporting DATA_DROPPED');
    this.queue('DATA_DROPPED', dataDropped({ droppedEvents: report.droppedEvents, droppedBytes: report.droppedBytes, sinceMs: report.sinceMs, tsSec: nowSec() }), {}, true);
  }

  // ---- plumbing ----

  /** Coalesces bursts of emit() into batches: one flush per turn of the event loop. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.connection?.flush();
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  /** Resolves true when `check` holds (re-checked on every ack, welcome and session end), false on timeout. */
  private waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = (): void => {
        if (!check()) return;
        finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (value: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(value);
      };
      this.waiters.add(waiter);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private clearTimers(): void {
    if (this.syncTimer) clearInterval(this.syncTimer);
    if (this.dropTimer) clearInterval(this.dropTimer);
    this.syncTimer = null;
    this.dropTimer = null;
  }

  private cleanUp(): void {
    this.clearTimers();
    this.state = 'stopped';
    this.notify();
  }
}
