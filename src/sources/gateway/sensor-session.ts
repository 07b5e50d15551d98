// One sensor connection: hello → admission → welcome → event batches with cumulative acks, until it
// ends. The wire (protocol v1 on /sensor, USP on /usp) turns frames into messages and back; everything
// else is the same for both. Any protocol error closes this session only, with a reason, and nothing
// from the offending message is stored.
import type { IncomingMessage } from 'node:http';
import type { WebSocket, RawData } from 'ws';
import { isCloudProduced, lookupEvent, validatePayload } from '../../catalogue/index.js';
import { newId } from '../../domain/ids.js';
import { detachedString } from '../../domain/strings.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import { RoutingTemplate } from '../../pipeline/envelope.js';
import { TaggedRouting } from '../../pipeline/tagged-routing.js';
import { CloseCode, DENIED_FOR } from '../../protocol/close-codes.js';
import { PROTOCOL_VERSIONS, type CrashReport, type ErrorMessage, type ServerMessage, type TaskMessage, type WelcomeMessage } from '../../protocol/messages.js';
import { answerUpdates, ISOLATION_INVESTIGATION, type TaskAnswer } from '../../services/tasking.js';
import type { Org, SensorIssue, SensorRecord, TagState } from '../../domain/records.js';
import type { AdmissionVerdict } from '../../services/admission-policy.js';
import { AdmissionError, authenticateSensor, hostFromHello, type Admission } from '../../services/sensor-admission.js';
import { deletedSensorEvent, sensorCloneEvent, sensorCrashEvent, sensorOverQuotaEvent } from '../platform/deployment-events.js';
import { backoffEvent } from '../platform/flow-control-events.js';
import { connectedEvent, disconnectedEvent, enrollmentEvent } from '../platform/lifecycle-events.js';
import type { GatewayContext } from './gateway-context.js';
import type { AdmissionOutcome } from './session-admission.js';
import type { RegisteredSession } from './session-registry.js';
import type { InboundBatch, SessionHello, SessionWire } from './session-wire.js';

type State = 'awaiting-hello' | 'admitting' | 'open' | 'closed';

/** Smallest plausible event_time in ms (2001-09-09): anything lower is a sensor sending seconds. */
const MIN_EVENT_TIME_MS = 1e12;

/** Copies of the event types sensors send that the catalogue does not know (a handful per fleet), bounded. */
const customTypes = new Map<string, string>();
const MAX_CUSTOM_TYPES = 1024;

/** A contiguous string of its own for a type the catalogue does not know: one copy per type, not per event. */
function customType(decoded: string): string {
  let type = customTypes.get(decoded);
  if (type === undefined) {
    if (customTypes.size >= MAX_CUSTOM_TYPES) customTypes.clear();
    type = detachedString(decoded);
    customTypes.set(type, type);
  }
  return type;
}

/** Rate limits of refusal events (decisions.md §3): at most one per sensor per window. */
export const OVER_QUOTA_NOTICE_WINDOW_MS = 10 * 60_000;
export const DELETED_NOTICE_WINDOW_MS = 24 * 3600_000;
export const CLONE_NOTICE_WINDOW_MS = 10 * 60_000;

/** How long a session closed for silence (4008) may take to finish the close handshake before it is cut off. */
const LIVENESS_CLOSE_GRACE_MS = 1000;

export class SensorSession implements RegisteredSession {
  sid = '';
  oid = '';
  connected_at = 0;
  readonly sessionId = detachedString(newId());
  hostname = '';
  fingerprint = '';
  readonly ext_ip: string;
  /**
   * Last time anything (frame or pong) arrived: monotonic ms (performance.now()), so that a jump of the
   * wall clock (or of an injected test clock) never ends a healthy session.
   */
  lastSeen: number;

  private state: State = 'awaiting-hello';
  /** The routing its events carry (its tags as they expire), from admission on. */
  private routing: TaggedRouting | null = null;
  private streamId = '';
  private storedSeqAtWelcome = 0;
  private lastSeq = 0;
  private inflight = 0;
  /** Too many of this session's batches await their commit. */
  private paused = false;
  /** Set while waiting for room in the writer's queue: cancels the wait. */
  private cancelWriterWait: (() => void) | null = null;
  /** Whether the socket is paused (for either reason above). */
  private readingPaused = false;
  /** performance.now() until which the sensor was told to pause (no second BACKOFF before it ends). */
  private backoffUntil = 0;
  private closeReason: string | null = null;
  /** Until the hello arrives (dropped then: a cleared timer still costs each session its object). */
  private helloTimer: NodeJS.Timeout | null;
  /** Set once the session was closed for silence: cuts the socket off if the close handshake does not complete. */
  private livenessCloseTimer: NodeJS.Timeout | null = null;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly ws: WebSocket,
    req: IncomingMessage,
    private readonly ctx: GatewayContext,
    private readonly wire: SessionWire,
  ) {
    this.ext_ip = detachedString(normaliseIp(req.socket.remoteAddress ?? ''));
    this.lastSeen = performance.now();
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
    this.helloTimer = setTimeout(() => this.fail(CloseCode.protocolViolation, 'no hello within the hello timeout', 'hello_timeout'), ctx.config.helloTimeoutS * 1000);
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('pong', () => (this.lastSeen = performance.now()));
    ws.on('close', (code, reason) => void this.onClose(code, reason.toString()));
    ws.on('error', (err) => {
      // Frames over maxPayload and other socket errors arrive here; ws closes the socket itself (1009 etc.).
      this.ctx.logger.debug({ err, sid: this.sid || undefined }, 'sensor socket error');
      if (this.closeReason === null) this.closeReason = errorReason(err);
      if ((err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.ctx.metrics.protocolErrors.inc({ reason: 'frame_too_big' });
    });
  }

  /** Resolves when the session has ended and its DISCONNECTED (if any) is submitted. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  // ---- RegisteredSession ----

  close(code: number, reason: string): void {
    if (this.closeReason === null) this.closeReason = reasonForCode(code, reason);
    // Errors get a full explanation first; the close reason itself is limited to 123 bytes.
    if (code >= 4000 || code === CloseCode.tryAgainLater || code === CloseCode.tooBig) this.send({ t: 'error', code, message: reason, ...(code === CloseCode.deleted ? { denied_for: DENIED_FOR } : {}) });
    this.ws.close(code, truncateReason(reason));
  }

  setTags(tags: ReadonlyArray<TagState>): void {
    this.routing?.setTags(tags);
  }

  openRouting(): RoutingTemplate | null {
    return this.state === 'open' && this.closeReason === null ? this.routingAt(this.ctx.now()) : null;
  }

  sendTask(task: TaskMessage): boolean {
    return this.state === 'open' && this.send(task);
  }

  /** Asks the sensor to reconnect (node shutdown, operator request): the wire's reconnect notice, then a close. */
  requestReconnect(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.sendFrames(this.wire.reconnectFrames());
    this.close(code, reason);
  }

  /** Drops the connection without a close handshake (shutdown grace period exceeded). */
  terminate(): void {
    if (this.closeReason === null) this.closeReason = 'shutdown';
    this.ws.terminate();
  }

  /** Called by the gateway's liveness sweep with performance.now(). */
  checkLiveness(now: number): void {
    if (this.state === 'closed' || this.livenessCloseTimer !== null) return;
    if (now - this.lastSeen > this.ctx.config.livenessTimeoutS * 1000) {
      if (this.closeReason === null) this.closeReason = 'timeout';
      this.ctx.metrics.protocolErrors.inc({ reason: 'liveness_timeout' });
      // A sensor that still reads gets the close code (4008) and its reason; a peer that is really gone
      // never completes the close handshake, so it is cut off shortly after.
      this.close(CloseCode.livenessTimeout, `liveness timeout: nothing received for ${this.ctx.config.livenessTimeoutS} s`);
      this.livenessCloseTimer = setTimeout(() => this.ws.terminate(), Math.min(LIVENESS_CLOSE_GRACE_MS, this.ctx.config.pingIntervalS * 1000));
      this.livenessCloseTimer.unref();
      return;
    }
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  // ---- frames ----

  private onFrame(data: RawData, isBinary: boolean): void {
    this.lastSeen = performance.now();
    // Once the session is closing nothing more is taken: a batch after one that failed to store must not be
    // stored before it (the sensor resends everything unacknowledged on its next session).
    if (this.state === 'closed' || this.closeReason !== null) return;
    const frame = toBuffer(data);
    const decoded = this.wire.decode(frame, isBinary, this.state !== 'awaiting-hello');
    if (!decoded.ok) return this.fail(decoded.code, decoded.error, decoded.metric);
    const message = decoded.message;
    if (message.t === 'hello') {
      if (this.state !== 'awaiting-hello') return this.fail(CloseCode.protocolViolation, 'hello sent twice', 'protocol_violation');
      void this.onHello(message.hello);
      return;
    }
    if (this.state !== 'open') return this.fail(CloseCode.protocolViolation, `"${message.t}" before welcome`, 'protocol_violation');
    this.onEvents(message, frame.length);
  }

  private async onHello(hello: SessionHello): Promise<void> {
    this.clearHelloTimer();
    const version = Math.max(...hello.versions.filter((v) => (PROTOCOL_VERSIONS as readonly number[]).includes(v)));
    if (!Number.isFinite(version)) {
      return this.fail(CloseCode.unsupportedVersion, `unsupported protocol version(s) ${hello.versions.join(',')}; server speaks ${PROTOCOL_VERSIONS.join(',')}`, 'unsupported_version');
    }
    this.state = 'admitting';
    // Nothing may arrive before the welcome; stop reading while admission runs.
    this.ws.pause();
    const now = this.ctx.now();
    let admission: Admission;
    let org: Org | null;
    let tags: TagState[];
    try {
      admission = await authenticateSensor(this.ctx.store, hello, this.ext_ip, now);
      [org, tags] = await Promise.all([this.ctx.store.getOrg(admission.sensor.oid), this.ctx.store.getSensorTags(admission.sensor.sid, now)]);
    } catch (err) {
      this.ws.resume();
      if (err instanceof AdmissionError) return this.fail(err.closeCode, err.message, err.closeCode === CloseCode.reenroll ? 'unknown_sensor' : 'unauthorized');
      this.ctx.logger.error({ err }, 'sensor admission failed');
      return this.fail(CloseCode.tryAgainLater, 'server error during admission; retry later', 'admission_error');
    }
    if (this.isClosed()) return; // the socket went away while we were admitting
    const sensor = admission.sensor;
    this.sid = sensor.sid;
    this.oid = sensor.oid;
    // What the session keeps of the hello is copied out of it: strings decoded from the frame would keep it all.
    this.hostname = detachedString(hello.host.hostname);
    this.fingerprint = detachedString(hello.host.fingerprint);
    this.streamId = detachedString(hello.stream_id);
    this.routing = new TaggedRouting(new RoutingTemplate({
      oid: sensor.oid, iid: sensor.iid, sid: sensor.sid, did: sensor.did, plat: hello.host.plat, arch: hello.host.arch,
      hostname: this.hostname, ext_ip: this.ext_ip, int_ip: detachedString(hello.host.int_ip), tags: [],
    }), tags);
    const template = this.routing.at(now);
    const lifecycle: PipelineEvent[] = [];
    if (admission.enrolled) {
      this.ctx.metrics.enrollments.inc();
      lifecycle.push(enrollmentEvent(template, now));
    }

    // Decision and registration in one step no other hello can interleave with (session-admission.ts).
    this.connected_at = now;
    let outcome: AdmissionOutcome;
    try {
      outcome = await this.ctx.admission.admit(this, {
        sensor, presented: { hostname: hello.host.hostname, fingerprint: hello.host.fingerprint }, enrolled: admission.enrolled, quota: org?.quota ?? null,
      });
    } catch (err) {
      this.ws.resume();
      this.ctx.logger.error({ err, sid: sensor.sid }, 'sensor admission failed');
      this.storeUnwelcomed(lifecycle);
      return this.fail(CloseCode.tryAgainLater, 'server error during admission; retry later', 'admission_error');
    }
    const verdict = outcome.verdict;
    if (verdict.kind !== 'admit') {
      this.ws.resume();
      return this.refuse(verdict, admission, lifecycle, now);
    }
    if (this.isClosed()) {
      // The socket went away while the cluster decided: free the slot just taken.
      this.ctx.admission.release(this);
      return this.storeUnwelcomed(lifecycle);
    }
    // The previous session was on a node that is gone: its DISCONNECTED comes from here, before CONNECTED.
    if (outcome.orphaned) lifecycle.push(disconnectedEvent(template, 'node_lost: the node holding the previous session is gone', now));
    this.ctx.refusals.admitted(sensor.sid);

    try {
      await this.ctx.store.updateSensorHost(sensor.sid, hostFromHello(hello, this.ext_ip), now);
      if (verdict.offlineCloneOf !== null) {
        const reason = `host "${this.hostname}" (another host fingerprint) presented this sensor id, last seen on "${verdict.offlineCloneOf}" (a clone?)`;
        await this.ctx.store.recordSensorIssue(sensor.sid, { kind: 'clone', reason, at: now });
        lifecycle.push(...(await this.cloneNotice(verdict.offlineCloneOf, now)));
      }
      // A previous session of this sensor may still have a batch being committed; its mark must be read after it.
      await this.ctx.commitsOf(sensor.sid);
      if (this.isClosed()) return this.storeUnwelcomed(lifecycle);
      const mark = await this.ctx.store.getSequenceMark(sensor.sid);
      this.storedSeqAtWelcome = mark && mark.stream_id === this.streamId ? mark.seq : 0;
      this.lastSeq = this.storedSeqAtWelcome;
      lifecycle.push(connectedEvent(template, { hostname: hello.host.hostname, isSegregated: hello.host.is_segregated, kernel: hello.host.kernel, mac: hello.host.mac }, now));
      if (hello.crash) lifecycle.push(...(await this.crashNotice(hello.crash, now)));
    } catch (err) {
      this.ws.resume();
      this.ctx.logger.error({ err, sid: sensor.sid }, 'sensor admission failed');
      return this.fail(CloseCode.tryAgainLater, 'server error during admission; retry later', 'admission_error');
    }
    if (this.isClosed()) return this.storeUnwelcomed(lifecycle);

    // CONNECTED (and enrollment, clone, crash) are durable before the welcome: whoever reads the timeline
    // after a sensor is welcomed finds them, on every store, and they precede the sensor's own events.
    try {
      await this.track(this.ctx.writer.submit(lifecycle));
    } catch (err) {
      this.ws.resume();
      this.ctx.logger.error({ err, sid: sensor.sid }, 'could not store CONNECTED');
      return this.fail(CloseCode.tryAgainLater, 'server error during admission; retry later', 'admission_error');
    }
    if (this.isClosed()) {
      // The socket went away while CONNECTED was committed: close the pair on the timeline.
      this.track(this.ctx.writer.submit([disconnectedEvent(this.routingAt(this.ctx.now()), 'connection lost before the welcome', this.ctx.now())]))
        .catch((err: unknown) => this.ctx.logger.error({ err, sid: this.sid }, 'could not store DISCONNECTED'));
      return;
    }
    this.ctx.alive.touch(sensor.sid, now);

    const welcome: WelcomeMessage = {
      t: 'welcome', version, oid: sensor.oid, iid: sensor.iid, sid: sensor.sid,
      ack_seq: this.storedSeqAtWelcome,
      sync_interval_s: this.ctx.config.syncIntervalS,
      ping_interval_s: this.ctx.config.pingIntervalS,
      liveness_timeout_s: this.ctx.config.livenessTimeoutS,
      max_frame_bytes: this.ctx.config.maxFrameBytes,
      max_batch_events: this.ctx.config.maxBatchEvents,
      server_time: now,
    };
    if (admission.enrolledSecret) welcome.identity = { oid: sensor.oid, iid: sensor.iid, sid: sensor.sid, secret: admission.enrolledSecret };
    this.state = 'open';
    this.ctx.metrics.sessionsOpened.inc();
    this.ctx.metrics.sessionsActive.inc();
    this.ctx.logger.info({ sid: sensor.sid, oid: sensor.oid, hostname: hello.host.hostname, ext_ip: this.ext_ip, enrolled: admission.enrolled, protocol: this.wire.protocol }, 'sensor connected');
    this.send(welcome);
    this.ws.resume();
    void this.afterWelcome(sensor, hello.host.is_segregated);
  }

  /** Queued tasks go out first; then the persistent isolation flag is re-applied if the host is not isolated. */
  private async afterWelcome(sensor: SensorRecord, isSegregated: boolean): Promise<void> {
    try {
      await this.ctx.tasking.deliverQueued(sensor.sid, this.routingAt(this.ctx.now()));
      if (sensor.should_isolate && !isSegregated && this.isOpen) {
        this.ctx.logger.info({ sid: sensor.sid }, 're-applying the persistent isolation');
        await this.ctx.tasking.submit(sensor, ['segregate_network'], { investigationId: ISOLATION_INVESTIGATION });
      }
    } catch (err) {
      this.ctx.logger.error({ err, sid: sensor.sid }, 'could not deliver tasks after the welcome');
    }
  }

  /**
   * Turns the sensor away (deleted, re-enroll ordered, clone, over quota): records the deployment event
   * (rate-limited per sensor) and the sensor's issue, then closes with the code and, where it applies, the
   * retry-after or ban the sensor must honour. A sensor enrolled by this very hello keeps its identity.
   */
  private async refuse(verdict: Exclude<AdmissionVerdict, { kind: 'admit' }>, admission: Admission, lifecycle: PipelineEvent[], now: number): Promise<void> {
    const sid = admission.sensor.sid;
    const events = lifecycle;
    let error: ErrorMessage;
    let issue: SensorIssue | null = null;
    let metric: string;
    try {
      switch (verdict.kind) {
        case 'deleted': {
          if (await this.ctx.store.claimSensorNotice(sid, 'deleted_sensor', now, DELETED_NOTICE_WINDOW_MS)) events.push(deletedSensorEvent(this.routingAt(now), now));
          error = { t: 'error', code: CloseCode.deleted, message: `sensor deleted by an operator; denied-for=${DENIED_FOR}`, denied_for: DENIED_FOR };
          issue = { kind: 'deleted', reason: `refused: deleted by an operator (denied for ${DENIED_FOR})`, at: now };
          metric = 'deleted';
          break;
        }
        case 'reenroll': {
          await this.ctx.store.setReenrollOrder(sid, null);
          error = { t: 'error', code: CloseCode.reenroll, message: `re-enroll ordered by an operator for host "${this.hostname}": drop the identity and enroll again` };
          metric = 'reenroll';
          break;
        }
        case 'clone_conflict': {
          const retry = this.ctx.refusals.refuse(sid, now);
          const reason = `host "${this.hostname}" presented this sensor id while "${verdict.liveHostname}" holds a live session (a clone?)`;
          events.push(...(await this.cloneNotice(verdict.liveHostname, now)));
          error = { t: 'error', code: CloseCode.cloneConflict, message: `${reason}; retry-after=${retry}`, retry_after_s: retry };
          issue = { kind: 'clone', reason: `${reason}; refused, retry after ${retry} s`, at: now };
          metric = 'clone';
          break;
        }
        case 'over_quota': {
          const retry = this.ctx.refusals.refuse(sid, now);
          if (await this.ctx.store.claimSensorNotice(sid, 'sensor_over_quota', now, OVER_QUOTA_NOTICE_WINDOW_MS)) events.push(sensorOverQuotaEvent(this.routingAt(now), now));
          const reason = `organization at its quota of ${verdict.quota} sensor${verdict.quota === 1 ? '' : 's'} online`;
          error = { t: 'error', code: CloseCode.overQuota, message: `${reason}; retry-after=${retry}`, retry_after_s: retry };
          issue = { kind: 'over_quota', reason: `${reason}; refused, retry after ${retry} s`, at: now };
          metric = 'over_quota';
          break;
        }
      }
      if (issue) await this.ctx.store.recordSensorIssue(sid, issue);
    } catch (err) {
      this.ctx.logger.error({ err, sid }, 'sensor refusal could not be recorded');
      error = { t: 'error', code: CloseCode.tryAgainLater, message: 'server error during admission; retry later', retry_after_s: 5 };
      metric = 'admission_error';
    }
    if (admission.enrolledSecret) {
      const s = admission.sensor;
      error.identity = { oid: s.oid, iid: s.iid, sid: s.sid, secret: admission.enrolledSecret };
    }
    if (events.length > 0) {
      // Stored before the refusal is sent, so the sensor's retry and any reader see them.
      try {
        await this.track(this.ctx.writer.submit(events));
      } catch (err) {
        this.ctx.logger.error({ err, sid }, 'could not store a deployment event');
      }
    }
    if (this.isClosed() || this.closeReason !== null) return;
    this.ctx.metrics.sessionsRefused.inc({ reason: metric });
    this.ctx.logger.warn({ sid, oid: admission.sensor.oid, hostname: this.hostname, ext_ip: this.ext_ip, code: error.code, reason: error.message }, 'sensor refused');
    this.closeReason = reasonForCode(error.code, error.message);
    this.send(error);
    this.ws.close(error.code, truncateReason(error.message));
  }

  /** The socket closed during admission: what was already decided (an enrollment, a clone notice) is still stored. */
  private storeUnwelcomed(lifecycle: PipelineEvent[]): void {
    const decided = lifecycle.filter((e) => e.event_type !== 'CONNECTED');
    if (decided.length === 0) return;
    this.track(this.ctx.writer.submit(decided)).catch((err: unknown) => this.ctx.logger.error({ err, sid: this.sid }, 'could not store a deployment event'));
  }

  /** sensor_clone, at most once per sensor per notice window (the caller records the sensor's issue either way). */
  private async cloneNotice(previousHostname: string, now: number): Promise<PipelineEvent[]> {
    const sid = this.sid;
    this.ctx.logger.warn({ sid, previous_hostname: previousHostname, new_hostname: this.hostname }, 'sensor id presented by another host (clone)');
    if (!(await this.ctx.store.claimSensorNotice(sid, 'sensor_clone', now, CLONE_NOTICE_WINDOW_MS))) return [];
    return [sensorCloneEvent(this.routingAt(now), { previous: previousHostname, current: this.hostname }, now)];
  }

  /** sensor_crash once per crash id, however often the report is resent. */
  private async crashNotice(crash: CrashReport, now: number): Promise<PipelineEvent[]> {
    if (!(await this.ctx.store.claimSensorNotice(this.sid, `crash:${crash.crash_id}`, now, Number.POSITIVE_INFINITY))) return [];
    const where = `FILE_ID ${crash.file_id}, LINE_NUMBER ${crash.line_number}, THREAD_ID ${crash.thread_id}`;
    this.ctx.logger.warn({ sid: this.sid, crash_id: crash.crash_id, crashed_at: crash.crashed_at, message: crash.message }, 'sensor reported a crash');
    await this.ctx.store.recordSensorIssue(this.sid, {
      kind: 'crash', reason: `crashed at ${new Date(crash.crashed_at).toISOString()} (${where})${crash.message ? `: ${crash.message.slice(0, 200)}` : ''}`, at: now,
    });
    this.ctx.metrics.sensorCrashes.inc();
    return [sensorCrashEvent(this.routingAt(now), { fileId: crash.file_id, lineNumber: crash.line_number, threadId: crash.thread_id }, now)];
  }

  /** The session's routing for what happens at `now` (without the tags that have expired by then). */
  private routingAt(now: number): RoutingTemplate {
    return this.routing!.at(now);
  }

  private onEvents(batch: InboundBatch, frameBytes: number): void {
    this.ctx.logger.trace({ sid: this.sid, seq: batch.seq, events: batch.events.length }, 'batch received');
    if (batch.seq <= this.lastSeq) {
      if (batch.seq <= this.storedSeqAtWelcome) {
        // A resend of a batch stored before this session: acknowledge again, store nothing.
        this.ctx.metrics.batchesDuplicate.inc();
        this.ctx.metrics.eventsDuplicate.inc(batch.events.length);
        this.sendAck(batch.seq);
        return;
      }
      return this.fail(CloseCode.badSequence, `batch seq ${batch.seq} not after ${this.lastSeq}`, 'bad_sequence');
    }
    if (batch.events.length > this.ctx.config.maxBatchEvents) {
      return this.fail(CloseCode.badMessage, `batch of ${batch.events.length} events exceeds max_batch_events ${this.ctx.config.maxBatchEvents}`, 'batch_too_big');
    }
    const template = this.routingAt(this.ctx.now());
    const events: PipelineEvent[] = new Array(batch.events.length);
    let answers: TaskAnswer[] | null = null;
    let syncAt = 0;
    for (let i = 0; i < batch.events.length; i++) {
      const e = batch.events[i]!;
      const entry = lookupEvent(e.event_type);
      // The catalogue's own string, or a copy: a string decoded from the frame may hold the batch's text alive
      // for as long as the event waits for its commit.
      const type = entry ? entry.eventType : customType(e.event_type);
      if (e.event_time < MIN_EVENT_TIME_MS) return this.fail(CloseCode.badMessage, `events[${i}].event_time: must be Unix milliseconds`, 'invalid_event');
      if (isCloudProduced(type)) return this.fail(CloseCode.badMessage, `events[${i}].event_type: ${type} is produced by the cloud, not by sensors`, 'invalid_event');
      if (entry) {
        const check = validatePayload(type, e.event);
        if (!check.valid) {
          const first = check.errors[0];
          return this.fail(CloseCode.badMessage, `events[${i}] ${type}: ${first ? `${first.field}: ${first.message}` : 'invalid'}`, 'invalid_event');
        }
        if (type === 'SYNC') syncAt = this.ctx.now();
      }
      const event_id = newId();
      const extras = e.investigation_id !== undefined || e.this !== undefined || e.parent !== undefined || e.target !== undefined || e.hostname !== undefined ? e : undefined;
      const json = template.envelope(type, e.event_time, event_id, JSON.stringify(e.event), extras);
      events[i] = { oid: this.oid, sid: this.sid, event_type: type, event_time: e.event_time, event_id, stream: 'event', json };
      if (e.task_id !== undefined) {
        const error = e.event.ERROR;
        (answers ??= []).push({ task_id: e.task_id.toLowerCase(), event_type: type, error: typeof error === 'number' ? error : undefined, json });
      }
    }
    this.lastSeq = batch.seq;
    this.ctx.metrics.eventsReceived.inc(events.length);
    this.ctx.metrics.orgEventsReceived.inc({ oid: this.oid }, events.length);
    this.ctx.metrics.orgBytesReceived.inc({ oid: this.oid }, frameBytes);
    const backoff = this.ctx.governor.check(this.oid, events.length);
    if (backoff && performance.now() >= this.backoffUntil) {
      // The batch is accepted all the same (nothing received is dropped); the sender pauses after it.
      this.backoffUntil = performance.now() + backoff.seconds * 1000;
      this.send({ t: 'backoff', seconds: backoff.seconds });
      this.ctx.metrics.backoffsSent.inc({ kind: backoff.kind });
      this.ctx.logger.warn({ sid: this.sid, oid: this.oid, seconds: backoff.seconds, reason: backoff.reason }, 'BACKOFF sent');
      events.push(backoffEvent(template, backoff.seconds, backoff.reason, this.ctx.now()));
    }
    if (syncAt) this.ctx.alive.touch(this.sid, syncAt);
    this.inflight++;
    if (this.inflight >= this.wire.maxInflight(this.ctx.config) && !this.paused) {
      this.paused = true;
      this.updateReading();
    }
    // The writer's queue is full: read no more until it has room (the batch just read is kept).
    if (this.ctx.writer.full && this.cancelWriterWait === null) {
      this.cancelWriterWait = this.ctx.writer.whenRoom(() => {
        this.cancelWriterWait = null;
        this.updateReading();
      });
      this.ctx.metrics.ingestReadPauses.inc();
      this.updateReading();
    }
    // The callbacks below keep numbers, not the batch: the decoded batch is garbage once its envelopes are
    // built, and kept until the commit (seconds at full load) it would be collected from the old generation.
    const seq = batch.seq;
    const received = batch.events.length;
    // Answers to tasks move their tasks in the same group commit as the events themselves.
    const tasks = answers ? { update: answerUpdates(this.sid, answers, this.ctx.now()) } : undefined;
    this.track(this.ctx.writer.submit(events, { sid: this.sid, stream_id: this.streamId, seq }, tasks)).then(
      () => {
        this.inflight--;
        this.ctx.runtime?.received(template.routing, received, frameBytes);
        this.sendAck(seq);
        if (this.paused && this.inflight < this.wire.maxInflight(this.ctx.config)) {
          this.paused = false;
          this.updateReading();
        }
      },
      () => {
        this.inflight--;
        // Not stored, so never acknowledged: the sensor keeps the batch and resends it on its next session.
        this.close(CloseCode.tryAgainLater, 'storage failure; reconnect and resend');
      },
    );
  }

  // ---- helpers ----

  /** Reads from the socket unless too many of its batches await their commit or the writer's queue is full. */
  private updateReading(): void {
    const pause = this.paused || this.cancelWriterWait !== null;
    if (pause === this.readingPaused || this.isClosed()) return;
    this.readingPaused = pause;
    if (pause) this.ws.pause();
    else this.ws.resume();
  }

  private clearHelloTimer(): void {
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }

  /** A method, not a field read, so that checks after an await are not narrowed away by the compiler. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private track(p: Promise<void>): Promise<void> {
    this.ctx.trackCommit(this.sid, p);
    return p;
  }

  private sendAck(seq: number): void {
    if (this.send({ t: 'ack', seq })) this.ctx.metrics.acksSent.inc();
  }

  private send(message: ServerMessage): boolean {
    return this.sendFrames(this.wire.encode(message));
  }

  private sendFrames(frames: Array<string | Buffer>): boolean {
    if (this.ws.readyState !== this.ws.OPEN || frames.length === 0) return false;
    for (const frame of frames) this.ws.send(frame);
    return true;
  }

  private fail(code: number, message: string, metricReason: string): void {
    if (this.state === 'closed' || this.closeReason !== null) return;
    this.ctx.metrics.protocolErrors.inc({ reason: metricReason });
    this.ctx.logger.warn({ sid: this.sid || undefined, ext_ip: this.ext_ip, code, reason: message }, 'closing sensor session');
    this.close(code, message);
  }

  private async onClose(code: number, reason: string): Promise<void> {
    this.clearHelloTimer();
    this.cancelWriterWait?.();
    this.cancelWriterWait = null;
    if (this.livenessCloseTimer !== null) clearTimeout(this.livenessCloseTimer);
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    const why = this.closeReason ?? reasonForCode(code, reason);
    this.ctx.metrics.sessionsClosed.inc({ reason: why.split(':')[0]!.slice(0, 32) });
    if (wasOpen && this.routing) {
      this.ctx.metrics.sessionsActive.dec();
      this.ctx.admission.release(this);
      const now = this.ctx.now();
      this.ctx.alive.touch(this.sid, now);
      this.ctx.runtime?.sessionEnded?.({ oid: this.oid, sid: this.sid, connected_at: this.connected_at }, now);
      this.ctx.logger.info({ sid: this.sid, code, reason: why }, 'sensor disconnected');
      try {
        await this.track(this.ctx.writer.submit([disconnectedEvent(this.routingAt(now), why, now)]));
      } catch (err) {
        this.ctx.logger.error({ err, sid: this.sid }, 'could not store DISCONNECTED');
      }
    } else if (this.sid) {
      this.ctx.admission.release(this);
    }
    this.resolveClosed();
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/** WebSocket close reasons are limited to 123 bytes. */
function truncateReason(reason: string): string {
  const buf = Buffer.from(reason, 'utf8');
  return buf.length <= 123 ? reason : buf.subarray(0, 120).toString('utf8') + '...';
}

function reasonForCode(code: number, reason: string): string {
  switch (code) {
    case CloseCode.normal: return 'closed';
    case CloseCode.goingAway: return reason.includes('server') ? 'shutdown' : 'going away';
    case 1006: return 'connection lost';
    case CloseCode.replaced: return 'replaced';
    case CloseCode.deleted: return 'deleted';
    case CloseCode.livenessTimeout: return 'timeout';
    default: return `error: ${code}${reason ? ` ${reason}` : ''}`;
  }
}

function errorReason(err: Error): string {
  const code = (err as { code?: string }).code;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return 'error: frame too big';
  return `error: ${err.message.slice(0, 80)}`;
}
