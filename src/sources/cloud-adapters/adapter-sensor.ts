// The sensor a cloud adapter appears as: sid = UUIDv5(oid, "cloud:<name>") (the USP seed-key scheme,
// docs/usp.md §2), enrolled on its first start (`enrollment` once), CONNECTED on every start and
// DISCONNECTED on every stop. Records become events through the USP mapping (docs/usp.md §5) and are
// submitted to the EventWriter like any sensor's.
import { isCloudProduced, lookupEvent, validatePayload } from '../../catalogue/index.js';
import type { CloudAdapterConfig } from '../../domain/cloud-adapters.js';
import { newId } from '../../domain/ids.js';
import { ARCHITECTURE, PLATFORM } from '../../domain/platform.js';
import type { SensorHost, TagState } from '../../domain/records.js';
import { RoutingTemplate } from '../../pipeline/envelope.js';
import type { PipelineEvent } from '../../pipeline/event-writer.js';
import { TaggedRouting } from '../../pipeline/tagged-routing.js';
import { hashSecret, newSecret } from '../../services/secrets.js';
import { adapterSid } from '../../services/sensor-admission.js';
import type { Store } from '../../store/store.js';
import { PICKET_VERSION } from '../../version.js';
import { connectedEvent, disconnectedEvent, enrollmentEvent } from '../platform/lifecycle-events.js';
import type { UspDataMessage } from '../usp/usp-data-message.js';
import { UspMapper } from '../usp/usp-mapping.js';

/** Cloud adapters enroll without an installation key: their sensors carry this iid. */
export const CLOUD_ADAPTER_IID = '00000000-0000-0000-0000-000000000000';

/** Event times before this (Unix ms, 2001-09-09) are refused from sensors; records get their arrival time. */
const MIN_EVENT_TIME_MS = 1e12;

export function cloudAdapterSid(oid: string, name: string): string {
  return adapterSid(oid, `cloud:${name}`);
}

/** One record as a source read it: a JSON object or a line of text, with an optional own time (ms) and type. */
export type AdapterRecord = Pick<UspDataMessage, 'j' | 't' | 's' | 'e'>;

export interface AdapterPipeline {
  store: Store;
  /** Resolves once the events are durably stored. */
  submit(events: ReadonlyArray<PipelineEvent>): Promise<void>;
  now: () => number;
}

export class AdapterSensor {
  readonly sid: string;
  private readonly mapper: UspMapper;
  /** Its routing (and tags, as they change and expire) while it runs. */
  private routing: TaggedRouting | undefined;

  constructor(
    private readonly config: CloudAdapterConfig,
    private readonly pipeline: AdapterPipeline,
  ) {
    this.sid = cloudAdapterSid(config.oid, config.name);
    this.mapper = new UspMapper(config.mapping, pipeline.now);
  }

  get connected(): boolean {
    return this.routing !== undefined;
  }

  /** Its tags changed (through the API on this node): the events mapped from now on carry these. */
  setTags(tags: ReadonlyArray<TagState>): void {
    this.routing?.setTags(tags);
  }

  /** Reads its tags from the store again (tags changed through another node's API reach it this way). */
  async refreshTags(): Promise<void> {
    if (!this.routing) return;
    const tags = await this.pipeline.store.getSensorTags(this.sid, this.pipeline.now());
    this.routing?.setTags(tags);
  }

  /** Enrolls the sensor on first use and records CONNECTED. Throws when the sensor was deleted. */
  async connect(): Promise<void> {
    if (this.routing) return;
    const { store, now } = this.pipeline;
    const c = this.config;
    const host: SensorHost = {
      hostname: c.hostname, plat: PLATFORM[c.platform], arch: ARCHITECTURE.usp_adapter, int_ip: '', ext_ip: '', mac: '', fingerprint: '',
      sensor_version: `picket-cloud-adapter/${PICKET_VERSION}`, kernel: false,
    };
    const at = now();
    let sensor = await store.getSensor(this.sid);
    let enrolled = false;
    if (!sensor) {
      try {
        await store.createSensor({ ...host, sid: this.sid, oid: c.oid, iid: CLOUD_ADAPTER_IID, secret_hash: hashSecret(newSecret()), tags: [], enroll: at });
        enrolled = true;
      } catch (err) {
        // Another node started the same adapter first.
        if (!(await store.getSensor(this.sid))) throw err;
      }
      sensor = await store.getSensor(this.sid);
      if (!sensor) throw new Error(`sensor ${this.sid} vanished right after enrollment`);
    }
    if (sensor.deleted !== null) throw new Error(`the adapter's sensor ${this.sid} is deleted; undelete it to resume`);
    await store.updateSensorHost(this.sid, { ...host, isolated: false }, at);
    const routing = new TaggedRouting(new RoutingTemplate({
      oid: c.oid, iid: sensor.iid, sid: this.sid, did: sensor.did, plat: host.plat, arch: host.arch, hostname: c.hostname, ext_ip: '', int_ip: '', tags: [],
    }), await store.getSensorTags(this.sid, at));
    const template = routing.at(at);
    const events = [connectedEvent(template, { hostname: c.hostname, isSegregated: false, kernel: false, mac: '' }, at)];
    if (enrolled) events.unshift(enrollmentEvent(template, at));
    await this.pipeline.submit(events);
    this.routing = routing;
  }

  /** Records DISCONNECTED when connected. */
  async disconnect(reason: string): Promise<void> {
    const routing = this.routing;
    if (!routing) return;
    this.routing = undefined;
    const at = this.pipeline.now();
    await this.pipeline.submit([disconnectedEvent(routing.at(at), reason, at)]);
  }

  /** Maps records to events; the first record that cannot be an event makes the whole set an error. */
  toEvents(records: ReadonlyArray<AdapterRecord>): { events: PipelineEvent[] } | { error: string } {
    if (!this.routing) return { error: 'adapter is not running' };
    const template = this.routing.at(this.pipeline.now());
    const events: PipelineEvent[] = [];
    for (let i = 0; i < records.length; i++) {
      const { event, hostname } = this.mapper.map({ x: i + 1, ...records[i] });
      // A mapped time before 2001 is not a time (a counter, a misread field): the time it arrived instead.
      if (event.event_time < MIN_EVENT_TIME_MS) event.event_time = this.pipeline.now();
      const type = event.event_type;
      if (isCloudProduced(type)) return { error: `record ${i}: event type ${type} is produced by the cloud` };
      if (lookupEvent(type)) {
        const check = validatePayload(type, event.event);
        if (!check.valid) return { error: `record ${i}: ${type}: ${check.errors[0] ? `${check.errors[0].field}: ${check.errors[0].message}` : 'invalid'}` };
      }
      const event_id = newId();
      const extras = hostname !== undefined || event.investigation_id !== undefined ? { hostname, investigation_id: event.investigation_id } : undefined;
      events.push({
        oid: this.config.oid, sid: this.sid, event_type: type, event_time: event.event_time, event_id, stream: 'event',
        json: template.envelope(type, event.event_time, event_id, JSON.stringify(event.event), extras),
      });
    }
    return { events };
  }

  /** Maps and durably stores records; throws when one cannot be an event. Returns how many were stored. */
  async deliver(records: ReadonlyArray<AdapterRecord>): Promise<number> {
    if (records.length === 0) return 0;
    const mapped = this.toEvents(records);
    if ('error' in mapped) throw new Error(mapped.error);
    await this.pipeline.submit(mapped.events);
    return mapped.events.length;
  }
}
