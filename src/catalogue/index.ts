// The event catalogue: every event Picket knows (seed pages + decisions.md), with its JSON Schema,
// TypeScript type, stream, producer and trigger; validation of envelopes; payload builders.
export type { CatalogueEntry, FieldDoc, PayloadKey, Producer, RoutingScope, SeedReference } from './definition.js';
export { CATALOGUE_VERSION, isCloudProduced, listEvents, lookupEvent, streamOf } from './registry.js';
export { validateEvent, validatePayload, type FieldError, type ValidateEventOptions, type ValidationResult } from './validate.js';
export { catalogueDocument, STREAMS } from './document.js';
export { exampleEnvelope } from './examples.js';
export {
  ackMessages,
  backoff,
  cloudAdapterDisabled,
  cloudNotification,
  commandResult,
  connected,
  dataDropped,
  deletedSensor,
  disconnected,
  enrollment,
  normaliseMac,
  perOrgTick,
  quotaChanged,
  selfTest,
  sensorClone,
  sensorCrash,
  sensorOverQuota,
  shuttingDown,
  startingUp,
  sync,
} from './builders.js';
export { Routing, type ProducedSensorRouting } from './routing.js';
export {
  ConnectedPayload,
  DataDroppedPayload,
  DisconnectedPayload,
  ShuttingDownPayload,
  StartingUpPayload,
  SyncPayload,
} from './lifecycle-events.js';
export { CloudNotificationPayload, CommandResultPayload, SelfTestPayload } from './tasking-events.js';
export { AckMessagesPayload, BackoffPayload } from './flow-control-events.js';
export {
  CloudAdapterDisabledPayload,
  DeletedSensorPayload,
  QuotaChangedPayload,
  SensorAddressPayload,
  SensorClonePayload,
  SensorCrashPayload,
  type EnrollmentPayload,
  type SensorOverQuotaPayload,
} from './deployment-events.js';
export { AuditPayload, BillingRecord, ExportCompletePayload, IngestPayload } from './platform-events.js';
export {
  PerCloudAdapterPayload,
  PerOrgPayload,
  PerSensorPayload,
  SCHEDULE_FREQUENCIES,
  scheduleFrequencyOf,
  type ScheduleEventType,
  type ScheduleFrequency,
} from './schedule-events.js';
