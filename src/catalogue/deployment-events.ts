// Deployment events: what the cloud records about sensors joining, being refused, cloned or crashing,
// and about the organization's quota and cloud adapters (decisions.md §3). All lowercase on the wire.
import { Type, type Static } from 'typebox';
import { cloudAdapterDisabled, deletedSensor, enrollment, quotaChanged, sensorClone, sensorCrash, sensorOverQuota } from './builders.js';
import { defineEvent } from './definition.js';
import { Count, Nested, Payload, PATTERNS, Text } from './primitives.js';

/** `{public_ip, internal_ip, host_name}`: where a sensor connected from (enrollment, sensor_over_quota). */
export const SensorAddressPayload = Payload(
  {
    public_ip: Text('Address the cloud saw the connection come from.'),
    internal_ip: Text('LAN address the sensor reported.'),
    host_name: Text('Hostname the sensor reported.'),
  },
  'Where the sensor connected from.',
);
export type EnrollmentPayload = Static<typeof SensorAddressPayload>;
export type SensorOverQuotaPayload = Static<typeof SensorAddressPayload>;

export const DeletedSensorPayload = Payload(
  { denied_for: Text('How long the sensor stays refused, as a Go duration: "720h0m0s" (30 days).', { pattern: PATTERNS.goDuration.pattern }) },
  'Payload of deleted_sensor.',
);
export type DeletedSensorPayload = Static<typeof DeletedSensorPayload>;

export const SensorClonePayload = Payload(
  {
    previous_hostname: Text('Hostname of the host that used the sensor id first.'),
    new_hostname: Text('Hostname of the host now presenting the same sensor id.'),
  },
  'Payload of sensor_clone.',
);
export type SensorClonePayload = Static<typeof SensorClonePayload>;

export const SensorCrashPayload = Payload(
  {
    crash_context: Nested(
      {
        FILE_ID: Count('Identifier of the sensor source file where the crash happened.'),
        LINE_NUMBER: Count('Line in that file.'),
        THREAD_ID: Count('Operating-system id of the thread that crashed.'),
      },
      'Where the sensor crashed, as it reported on its next start.',
    ),
  },
  'Payload of sensor_crash.',
);
export type SensorCrashPayload = Static<typeof SensorCrashPayload>;

const Quota = (description: string) => Type.Unsafe<number | null>({ type: ['integer', 'null'], minimum: 0, description });

export const QuotaChangedPayload = Payload(
  {
    new_quota: Quota('Quota after the change: the most sensors of the org online at once; null = unlimited.'),
    old_quota: Quota('Quota before the change; null = unlimited.'),
  },
  'Payload of quota_changed.',
);
export type QuotaChangedPayload = Static<typeof QuotaChangedPayload>;

export const CloudAdapterDisabledPayload = Payload(
  { error: Text('The last error of the adapter before it was disabled, e.g. "invalid api key".') },
  'Payload of cloud_adapter_disabled.',
);
export type CloudAdapterDisabledPayload = Static<typeof CloudAdapterDisabledPayload>;

const seed = (heading: string) => ({ page: 'platform-events' as const, heading, hasSample: true });

export const DEPLOYMENT_EVENTS = [
  defineEvent({
    eventType: 'enrollment',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'A sensor presenting a valid installation key and no identity is given a new sid (emitted once per sensor).',
    description: 'A sensor enrolled into the organization for the first time.',
    routingScope: 'sensor',
    payloadSchema: SensorAddressPayload,
    example: enrollment({ publicIp: '104.196.34.101', internalIp: '172.17.0.2', hostname: 'linux-server-1' }),
    seed: seed('ENROLLMENT'),
  }),
  defineEvent({
    eventType: 'sensor_over_quota',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'A sensor tries to connect while its organization already has its quota of sensors online (at most once per sensor per 10 minutes).',
    description: 'A connection was refused because the organization is at its quota; the sensor is told to retry later.',
    routingScope: 'sensor',
    payloadSchema: SensorAddressPayload,
    example: sensorOverQuota({ publicIp: '104.196.34.101', internalIp: '172.17.0.2', hostname: 'linux-server-1' }),
    seed: seed('SENSOR_OVER_QUOTA'),
  }),
  defineEvent({
    eventType: 'deleted_sensor',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'A deleted sensor tries to connect again and is refused (at most once per sensor per 24 hours).',
    description: 'A sensor that was deleted from the organization attempted to connect.',
    routingScope: 'sensor',
    payloadSchema: DeletedSensorPayload,
    example: deletedSensor(),
    seed: seed('DELETED_SENSOR'),
  }),
  defineEvent({
    eventType: 'sensor_clone',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'The same sid is presented by a second host (another host fingerprint, or another hostname while the first session is live).',
    description: 'The cloud detected that a sensor id may have been cloned (e.g. a golden image).',
    routingScope: 'sensor',
    payloadSchema: SensorClonePayload,
    example: sensorClone({ previousHostname: 'server-1', newHostname: 'server-2' }),
    seed: seed('SENSOR_CLONE'),
  }),
  defineEvent({
    eventType: 'sensor_crash',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'A sensor that died abnormally reports the crash context on its next start.',
    description: 'A sensor crashed; the payload says where, to help troubleshooting.',
    routingScope: 'sensor',
    payloadSchema: SensorCrashPayload,
    example: sensorCrash({ fileId: 63, lineNumber: 1216, threadId: 7808 }),
    seed: seed('SENSOR_CRASH'),
  }),
  defineEvent({
    eventType: 'quota_changed',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'The organization\'s sensor quota is changed (every change, up or down; lowering it disconnects nobody).',
    description: 'The quota of the organization changed.',
    routingScope: 'org',
    payloadSchema: QuotaChangedPayload,
    example: quotaChanged({ oldQuota: 25, newQuota: 30 }),
    seed: seed('QUOTA_CHANGED'),
  }),
  defineEvent({
    eventType: 'cloud_adapter_disabled',
    stream: 'deployment',
    producer: 'cloud',
    trigger: 'A cloud adapter has kept failing for longer than its grace period and is disabled.',
    description: 'A cloud adapter was disabled because it has been erroring for a long time; the payload has its last error.',
    routingScope: 'org',
    payloadSchema: CloudAdapterDisabledPayload,
    example: cloudAdapterDisabled('invalid api key'),
    seed: seed('CLOUD_ADAPTER_DISABLED'),
  }),
];
