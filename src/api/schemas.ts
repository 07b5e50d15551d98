// TypeBox schemas shared by the routes: they validate requests, serialise responses and make the
// OpenAPI document. Times in responses come twice: `<name>` as an ISO 8601 string and `<name>_ts` in
// Unix milliseconds; time parameters in queries are Unix seconds (decisions.md §1).
import { Type, type TSchema } from 'typebox';

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const ErrorResponse = Type.Object(
  {
    error: Type.String({ description: 'What went wrong, naming the field or parameter at fault' }),
    code: Type.String({ description: 'Short machine-readable code: VALIDATION_FAILED, INVALID_BODY, INVALID_CURSOR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, SENSOR_OFFLINE, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, NOT_READY, INTERNAL' }),
    status: Type.Integer({ description: 'The HTTP status, repeated' }),
    field: Type.Optional(Type.String({ description: 'The request field at fault, when there is one' })),
  },
  { $id: 'Error', title: 'Error' },
);

/** Response entries for the error statuses of a route. */
export const errors = { '4xx': ErrorResponse, '5xx': ErrorResponse } as const;

export const Uuid = (description: string) => Type.String({ description: `${description} (UUID)`, maxLength: 64 });

export const OidParams = Type.Object({ oid: Uuid('Organization id') });
export const SidParams = Type.Object({ sid: Uuid('Sensor id') });

const timeProps = (name: string, what: string, nullable: boolean) => {
  const iso = Type.String({ description: `${what}, ISO 8601`, format: 'date-time' });
  const ms = Type.Integer({ description: `${what}, Unix ms` });
  return nullable ? { [name]: Nullable(iso), [`${name}_ts`]: Nullable(ms) } : { [name]: iso, [`${name}_ts`]: ms };
};

/**
 * A quota as given: an integer, null, or form text ("25", "unlimited"). The schema accepts any value on
 * purpose: with type coercion on, a union with an integer branch turns null into 0. views.ts parseQuota()
 * checks the value and answers 400 naming the field.
 */
export const QuotaInput = Type.Unsafe<unknown>({ description: 'Most sensors online at once: an integer from 0, or null / "unlimited" (also "" in forms) for no limit' });

export const OrgSchema = Type.Object({
  oid: Type.String(),
  name: Type.String(),
  quota: Nullable(Type.Integer({ description: 'Most sensors online at once; null = unlimited' })),
  ...timeProps('created', 'Creation time', false),
  sensors: Type.Optional(Type.Integer({ description: 'Enrolled sensors, not counting deleted ones (single-org reads only)' })),
  online: Type.Optional(Type.Integer({ description: 'Sensors online now (single-org reads only)' })),
}, { title: 'Organization' });

export const Role = Type.Enum(['root', 'admin', 'read'], { description: 'root: admin + create/list organizations; admin: everything in its organization; read: GET only' });

export const ApiKeySchema = Type.Object({
  key_id: Type.String(),
  oid: Type.String(),
  name: Type.String(),
  role: Role,
  ...timeProps('created', 'Creation time', false),
}, { title: 'ApiKey' });

export const InstallationKeySchema = Type.Object({
  iid: Type.String(),
  oid: Type.String(),
  desc: Type.String(),
  tags: Type.String({ description: 'Tags given to sensors enrolling with this key, comma-separated (as in the platform API)' }),
  ...timeProps('created', 'Creation time', false),
}, { title: 'InstallationKey' });

export const SensorIssueSchema = Type.Object({
  kind: Type.Enum(['over_quota', 'clone', 'deleted', 'crash'], { description: 'over_quota, clone, deleted: a refused connection; crash: a reported crash' }),
  reason: Type.String(),
  ...timeProps('at', 'When it happened', false),
}, { title: 'SensorIssue' });

export const sensorInfoProps = {
  state: Type.Enum(['online', 'offline', 'deleted', 'refused'], { description: 'online: a live session; refused: its last connection attempt was turned away (see state_reason); deleted; offline' }),
  state_reason: Nullable(Type.String({ description: 'Why the sensor is refused or deleted' })),
  last_issue: Nullable(SensorIssueSchema),
  reenroll_order: Nullable(Type.Object({
    hostname: Nullable(Type.String({ description: 'The copy it applies to; null: whichever copy connects next' })),
    ...timeProps('at', 'When it was ordered', false),
  }, { description: 'A pending re-enroll order' })),
  sid: Type.String(),
  oid: Type.String(),
  iid: Type.String({ description: 'Installation key the sensor enrolled with' }),
  did: Nullable(Type.String({ description: 'Device id' })),
  plat: Type.Integer({ description: 'Platform code (full 32-bit value)' }),
  arch: Type.Integer({ description: 'Architecture code' }),
  hostname: Type.String(),
  ext_ip: Type.String(),
  int_ip: Type.String(),
  mac: Type.String(),
  sensor_version: Type.String(),
  kernel: Type.Boolean({ description: 'Sensor has a kernel acquisition component' }),
  ...timeProps('enroll', 'Enrollment time', false),
  ...timeProps('alive', 'Last seen alive (persisted in batches); null before the first session', true),
  tags: Type.Array(Type.String(), { description: 'Current tags' }),
  isolated: Type.Boolean({ description: 'Sensor reports being network-isolated' }),
  should_isolate: Type.Boolean({ description: 'Persistent isolation flag' }),
  ...timeProps('deleted', 'Deletion time; null when not deleted', true),
};

export const SensorInfo = Type.Object(sensorInfoProps, { title: 'SensorInfo' });

export const OnlineInfo = Type.Object({
  connected_at: Type.Optional(Type.String({ format: 'date-time', description: 'Start of the live session' })),
  connected_ts: Type.Optional(Type.Integer({ description: 'Start of the live session, Unix ms' })),
  ext_ip: Type.Optional(Type.String({ description: 'Address the live session comes from' })),
}, { title: 'OnlineInfo', description: 'The live session; an empty object when the sensor is offline' });

export const SensorListItem = Type.Object({ ...sensorInfoProps, is_online: Type.Boolean() }, { title: 'SensorListItem' });

export const TagInfo = Type.Object({
  tag: Type.String(),
  by: Type.String({ description: 'Who added it: "installation-key", "api:<key name>", ...' }),
  ...timeProps('added', 'When it was added', false),
  ...timeProps('expires', 'When it expires; null = never', true),
}, { title: 'TagInfo' });

export const TagsResponse = Type.Object({
  tags: Type.Record(Type.String(), Type.Record(Type.String(), TagInfo), { description: '{<sid>: {<tag>: info}}' }),
}, { title: 'SensorTags' });

/** Accepts a list, or one string of comma-separated values (form bodies: `tags=a,b` or repeated `tags=`). */
export const StringList = (description: string) => Type.Union([Type.String({ maxLength: 4096 }), Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 1000 })], { description });

export const DeletedResponse = Type.Object({ deleted: Type.Boolean() }, { title: 'Deleted' });
