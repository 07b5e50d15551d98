// Events around a task sent to a sensor (decisions.md §2 and §4): the sensor's receipt of the task
// (CLOUD_NOTIFICATION), its generic answer (RECEIPT) and the result event of each command it answers.
import { Type, type Static } from 'typebox';
import { cloudNotification, commandResult, selfTest } from './builders.js';
import { defineEvent, type EventDefinition } from './definition.js';
import { EpochSeconds, ErrorCode, Hex32, Nested, Payload, Text } from './primitives.js';

const TASK_ROUTING = 'routing.investigation_id echoes the task\'s investigation id (an id starting with `__` is kept out of outputs).';
const TASK_EXAMPLE_ROUTING = { investigation_id: 'isolate-4afdeb2b' };

/** The `{ERROR, ERROR_MESSAGE?}` shape shared by RECEIPT and every command result event. */
export const CommandResultPayload = Payload(
  {
    ERROR: ErrorCode(),
    ERROR_MESSAGE: Type.Optional(Text('Human explanation of the result, e.g. "done" or why the command failed.')),
  },
  'Result of a command; commands may add their own fields.',
);
export type CommandResultPayload = Static<typeof CommandResultPayload>;

export const CloudNotificationPayload = Payload(
  {
    NOTIFICATION_ID: Text('Kind of request the sensor received, e.g. ADD_EXFIL_EVENT_REQ or the command name.'),
    NOTIFICATION: Nested(
      { INVESTIGATION_ID: Type.Optional(Text('Investigation id the task was sent with, if any.')) },
      'The task as the sensor received it.',
    ),
    HCP_IDENT: Nested(
      {
        HCP_ORG_ID: Hex32('Organization id (oid) as 32 hex digits.'),
        HCP_SENSOR_ID: Hex32('Sensor id (sid) as 32 hex digits.'),
        HCP_INSTALLER_ID: Hex32('Installation key id (iid) as 32 hex digits; all zeroes when not known.'),
        HCP_ARCHITECTURE: Type.Integer({ minimum: 0, maximum: 255, description: 'Architecture code (2 = x64, ...); 0 when not known.' }),
        HCP_PLATFORM: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'Platform code (536870912 = linux, ...); 0 when not known.' }),
      },
      'Identity the task was addressed to.',
    ),
    EXPIRY: EpochSeconds('When the task expires, Unix seconds; 0 if it never does.'),
    ERROR: Type.Optional(ErrorCode('Set when the task is refused before running: 87 if it expired or is addressed to another sensor.')),
    ERROR_MESSAGE: Type.Optional(Text('Why the task was refused.')),
  },
  'Payload of CLOUD_NOTIFICATION.',
);
export type CloudNotificationPayload = Static<typeof CloudNotificationPayload>;

export const SelfTestPayload = Payload({ ts: EpochSeconds('When the self-test was requested, Unix seconds.') }, 'Payload of SELF_TEST.');
export type SelfTestPayload = Static<typeof SelfTestPayload>;

const EXAMPLE_IDENT = {
  oid: 'c82e5c17-d519-4ef5-a4ac-c454a95d31db',
  sid: '8fc370e6-699a-4985-8e75-c1316b725570',
  iid: 'ca812425-5a36-4c73-a0a0-935a8ace6451',
  plat: 536870912,
  arch: 2,
};

/** A command's result event: `{ERROR, ERROR_MESSAGE?}` plus whatever the command reports. */
function resultEvent(eventType: string, command: string, description: string, seedPage?: 'sensor-events' | 'platform-events'): EventDefinition {
  return defineEvent({
    eventType,
    stream: 'event',
    producer: 'sensor',
    trigger: `The sensor finished the \`${command}\` command (successfully or not).`,
    description,
    routingScope: 'sensor',
    payloadSchema: CommandResultPayload,
    example: commandResult(0),
    routingNote: TASK_ROUTING,
    exampleRouting: TASK_EXAMPLE_ROUTING,
    ...(seedPage ? { seed: { page: seedPage, heading: eventType, hasSample: false } } : {}),
  });
}

export const TASKING_EVENTS = [
  defineEvent({
    eventType: 'CLOUD_NOTIFICATION',
    stream: 'event',
    producer: 'sensor',
    trigger: 'The sensor receives a task, before executing it (or instead of it, when the task is refused).',
    description: 'Receipt from the sensor that it received a task, with high-level errors (if any).',
    routingScope: 'sensor',
    payloadSchema: CloudNotificationPayload,
    example: cloudNotification({ notificationId: 'segregate_network', notification: { INVESTIGATION_ID: 'isolate-4afdeb2b' }, ...EXAMPLE_IDENT, expiry: 1717030477 }),
    routingNote: TASK_ROUTING,
    exampleRouting: TASK_EXAMPLE_ROUTING,
    seed: { page: 'sensor-events', heading: 'CLOUD_NOTIFICATION', hasSample: true },
  }),
  defineEvent({
    eventType: 'RECEIPT',
    stream: 'event',
    producer: 'sensor',
    trigger: 'The sensor answers a command that has no result event of its own, or refuses a command (unknown: ERROR 50, bad arguments: 87, run not allowed: 5).',
    description: 'Generic response to a command; ERROR says whether it succeeded.',
    routingScope: 'sensor',
    payloadSchema: CommandResultPayload,
    example: commandResult(50, 'unknown command: frobnicate'),
    routingNote: TASK_ROUTING,
    exampleRouting: TASK_EXAMPLE_ROUTING,
    seed: { page: 'sensor-events', heading: 'RECEIPT', hasSample: false },
  }),
  resultEvent('SEGREGATE_NETWORK', 'segregate_network', 'Emitted when the sensor isolated the host from the network (everything but the cloud connection is blocked).', 'sensor-events'),
  resultEvent('REJOIN_NETWORK', 'rejoin_network', 'Emitted when the sensor lifted the network isolation of the host (the pair of SEGREGATE_NETWORK).'),
  resultEvent('RUN', 'run', 'Emitted after a run command (payload or shell command); run is refused with RECEIPT ERROR 5 unless the sensor allows it.', 'platform-events'),
  resultEvent('SET_PERFORMANCE_MODE', 'set_performance_mode', 'Emitted after the kernel performance mode was switched (e.g. no file tracking on Windows).', 'platform-events'),
  resultEvent('UNLOAD_KERNEL', 'unload_kernel', 'Emitted after a manual unload of the kernel component; ERROR 50 from a sensor without one.', 'platform-events'),
  resultEvent('UPDATE', 'update', 'Emitted after the configuration of one collector of the sensor was updated.', 'platform-events'),
  defineEvent({
    eventType: 'SELF_TEST',
    stream: 'event',
    producer: 'cloud',
    trigger: 'A power-on self-test is requested from a sensor; the cloud records the request on the sensor\'s timeline.',
    description: 'Internal event: the request for a self-test (POST) of the sensor.',
    routingScope: 'sensor',
    payloadSchema: SelfTestPayload,
    example: selfTest(1717029877),
    routingNote: TASK_ROUTING,
    exampleRouting: TASK_EXAMPLE_ROUTING,
    seed: { page: 'sensor-events', heading: 'SELF_TEST', hasSample: false },
  }),
  resultEvent('SELF_TEST_RESULT', 'selftest', 'Internal event: the result of the sensor\'s power-on self-test; tests may add their own fields.', 'platform-events'),
];
