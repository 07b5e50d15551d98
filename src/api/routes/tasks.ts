// Tasking (platform-reference.md §3): task a sensor with command lines, read back what became of each
// task, and the persistent isolation flag (re-applied by the cloud on every reconnect).
import { Type } from 'typebox';
import { isUuid } from '../../domain/ids.js';
import { ARCHITECTURE } from '../../domain/platform.js';
import type { TaskRecord } from '../../domain/records.js';
import { CommandLineError, parseCommand } from '../../protocol/command-line.js';
import { ISOLATION_INVESTIGATION, SensorOfflineError, taskAsOf, type TaskTarget } from '../../services/tasking.js';
import { loadSensor, principalOf, type Authenticated } from '../auth.js';
import type { ApiApp, ApiContext } from '../context.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import { errors, SidParams, StringList } from '../schemas.js';
import { isoOrNull } from '../views.js';

/** Most command lines in one request. */
const MAX_TASKS = 100;
const MAX_TTL_S = 30 * 86_400;

const TaskSchema = Type.Object({
  task_id: Type.String(),
  sid: Type.String(),
  command: Type.String(),
  investigation_id: Type.Union([Type.String(), Type.Null()]),
  state: Type.Enum(['queued', 'sent', 'received', 'answered', 'expired'], { description: 'queued: waits for the sensor\'s next session; sent; received: CLOUD_NOTIFICATION arrived; answered: the result arrived; expired: still queued or sent when `expires` passed' }),
  created: Type.String({ format: 'date-time' }),
  expires: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'The EXPIRY the sensor is told: creation plus the ttl, or plus 10 minutes for a task without one' }),
  sent_at: Type.Union([Type.String(), Type.Null()]),
  received_at: Type.Union([Type.String(), Type.Null()]),
  answered_at: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.Integer(), Type.Null()], { description: 'ERROR of the answer (0 = success; 5 denied, 50 not supported, 87 bad arguments or expired, ...)' }),
  answer: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'The answering event, {routing, event}' }),
}, { title: 'Task' });

/** A task as the API shows it at `now` (see taskAsOf: expiry is read, not waited for). */
export function taskView(task: TaskRecord, now: number) {
  const t = taskAsOf(task, now);
  return {
    task_id: t.task_id, sid: t.sid, command: t.command, investigation_id: t.investigation_id, state: t.state,
    created: new Date(t.created).toISOString(), expires: isoOrNull(t.expires), sent_at: isoOrNull(t.sent_at),
    received_at: isoOrNull(t.received_at), answered_at: isoOrNull(t.answered_at), error: t.error,
    answer: t.answer !== null ? (JSON.parse(t.answer) as Record<string, unknown>) : null,
  };
}

/**
 * The sensor a task call names. One holding an open session on this node is taken from that session (its
 * organization and architecture; a deleted sensor's session is closed): tasking is a hot path, and the
 * store read costs a tenth of the call's work (docs/performance.md). Otherwise read from the store. Either
 * way a sensor of another organization is 404.
 */
async function taskTarget(ctx: ApiContext, request: Authenticated, sid: string): Promise<TaskTarget & { arch: number; deleted: number | null }> {
  const routing = isUuid(sid) ? ctx.presence.localRouting(sid.toLowerCase())?.routing : undefined;
  if (routing && routing.oid === principalOf(request).oid) return { sid: routing.sid, oid: routing.oid, arch: routing.arch, deleted: null };
  return loadSensor(ctx, request, sid);
}

export function registerTaskRoutes(app: ApiApp, ctx: ApiContext): void {
  app.post('/v1/:sid', {
    schema: {
      tags: ['tasks'],
      summary: 'Task a sensor with one or more command lines; answers at once with the tasks created',
      description:
        'JSON `{"tasks": ["segregate_network"], "investigation_id": "case-42", "ttl": 3600}` or form `tasks=...&tasks=...&investigation_id=...` ' +
        '(as the platform\'s clients send it). Command lines are parsed shell-like (quotes group). An offline sensor is 409 SENSOR_OFFLINE unless ' +
        '`ttl` (seconds) is given: the task is then queued and delivered on its next CONNECTED, or expires. The sensor answers with ' +
        'CLOUD_NOTIFICATION, then the result event, both carrying the investigation id in routing; follow a task at GET /v1/tasks/{task_id}.',
      params: SidParams,
      body: Type.Object({
        tasks: StringList('Command lines: a list, or one string (a form may repeat the field)'),
        investigation_id: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Echoed in routing.investigation_id of every event the task causes; ids starting with "__" stay out of outputs' })),
        ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TTL_S, description: 'Seconds the task may wait for an offline sensor (queued); omit to task online sensors only' })),
      }),
      response: { 200: Type.Object({ tasks: Type.Array(TaskSchema) }), ...errors },
    },
  }, async (request) => {
    const sensor = await taskTarget(ctx, request, request.params.sid);
    if (sensor.deleted !== null) throw new ApiError(409, 'CONFLICT', `sensor ${sensor.sid} is deleted`);
    if (sensor.arch === ARCHITECTURE.usp_adapter) throw new ApiError(409, 'CONFLICT', `sensor ${sensor.sid} is a USP log adapter: adapters take no tasks`);
    // A form's single `tasks` field is one command line (commas are part of commands); a list gives several.
    const given = typeof request.body.tasks === 'string' ? [request.body.tasks] : request.body.tasks;
    const commands = given.map((c) => c.trim()).filter((c) => c.length > 0);
    if (commands.length === 0) throw badRequest('body field "tasks" holds no command line', 'tasks');
    if (commands.length > MAX_TASKS) throw badRequest(`body field "tasks" has ${commands.length} command lines; at most ${MAX_TASKS} per request`, 'tasks');
    for (const [i, command] of commands.entries()) {
      try {
        parseCommand(command);
      } catch (err) {
        if (err instanceof CommandLineError) throw badRequest(`body field "tasks"[${i}]: ${err.message}`, 'tasks');
        throw err;
      }
    }
    let tasks: TaskRecord[];
    try {
      tasks = await ctx.tasking.submit(sensor, commands, { investigationId: request.body.investigation_id, ttlS: request.body.ttl });
    } catch (err) {
      if (err instanceof SensorOfflineError) throw new ApiError(409, 'SENSOR_OFFLINE', err.message);
      throw err;
    }
    ctx.logger.info({ sid: sensor.sid, tasks: tasks.map((t) => t.task_id), commands: commands.map((c) => c.split(/\s/)[0]), by: principalOf(request).key_id }, 'sensor tasked');
    return { tasks: tasks.map((t) => taskView(t, ctx.now())) };
  });

  app.get('/v1/tasks/:task_id', {
    schema: {
      tags: ['tasks'],
      summary: 'One task: its state and, once answered, the answering event',
      params: Type.Object({ task_id: Type.String({ maxLength: 64, description: 'Task id (UUID)' }) }),
      response: { 200: TaskSchema, ...errors },
    },
  }, async (request) => {
    const key = principalOf(request);
    const id = request.params.task_id.toLowerCase();
    const task = isUuid(id) ? await ctx.store.getTask(id) : null;
    if (!task || task.oid !== key.oid) throw notFound(`task ${request.params.task_id} not found`);
    return taskView(task, ctx.now());
  });

  app.get('/v1/:sid/tasks', {
    schema: {
      tags: ['tasks'],
      summary: 'A sensor\'s tasks, newest first',
      params: SidParams,
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }),
      response: { 200: Type.Object({ tasks: Type.Array(TaskSchema) }), ...errors },
    },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    const now = ctx.now();
    return { tasks: (await ctx.store.listTasks(sensor.sid, request.query.limit)).map((t) => taskView(t, now)) };
  });

  const IsolationResponse = Type.Object({
    should_isolate: Type.Boolean({ description: 'The persistent flag: re-applied on every reconnect' }),
    is_isolated: Type.Boolean({ description: 'What the sensor last reported (CONNECTED.IS_SEGREGATED or a command result)' }),
    task_id: Type.Union([Type.String(), Type.Null()], { description: 'The segregate_network / rejoin_network task sent now, when the sensor is online' }),
  });

  app.get('/v1/:sid/isolation', {
    schema: { tags: ['tasks'], summary: 'The persistent isolation flag and the sensor\'s reported isolation', params: SidParams, response: { 200: IsolationResponse, ...errors } },
  }, async (request) => {
    const sensor = await loadSensor(ctx, request, request.params.sid);
    return { should_isolate: sensor.should_isolate, is_isolated: sensor.isolated, task_id: null };
  });

  for (const [method, value, command] of [['POST', true, 'segregate_network'], ['DELETE', false, 'rejoin_network']] as const) {
    app.route({
      method,
      url: '/v1/:sid/isolation',
      schema: {
        tags: ['tasks'],
        summary: value
          ? 'Isolate the sensor\'s host from the network, persistently: segregate_network now if online, and again on every reconnect'
          : 'Lift the persistent isolation: rejoin_network now if online',
        params: SidParams,
        response: { 200: IsolationResponse, ...errors },
      },
      handler: async (request) => {
        const sensor = await loadSensor(ctx, request, (request.params as { sid: string }).sid);
        await ctx.store.setShouldIsolate(sensor.sid, value);
        let taskId: string | null = null;
        if (ctx.presence.isOnline(sensor.sid)) {
          const [task] = await ctx.tasking.submit(sensor, [command], { investigationId: ISOLATION_INVESTIGATION });
          taskId = task?.task_id ?? null;
        }
        ctx.logger.info({ sid: sensor.sid, should_isolate: value, task_id: taskId, by: principalOf(request).key_id }, 'isolation flag set');
        return { should_isolate: value, is_isolated: sensor.isolated, task_id: taskId };
      },
    });
  }
}
