// Tasking (decisions.md §2, §4; platform-reference.md §3): creates tasks, sends them over a sensor's live
// session or queues them for its next one (with a time-to-live), records SELF_TEST when a self-test is
// requested, and follows each task from the sensor's answers (CLOUD_NOTIFICATION, then the result).
import { selfTest } from '../catalogue/index.js';
import { newId } from '../domain/ids.js';
import type { SensorRecord, TaskRecord } from '../domain/records.js';
import type { Logger } from '../observability/logger.js';
import type { PipelineEvent } from '../pipeline/event-writer.js';
import { RoutingTemplate } from '../pipeline/envelope.js';
import { parseCommand } from '../protocol/command-line.js';
import type { TaskMessage } from '../protocol/messages.js';
import type { Store, TaskUpdate, TaskWrites } from '../store/store.js';
import type { FleetPresence } from './presence.js';

/** How long a task sent to a live session may still run when no time-to-live was given, ms. */
export const LIVE_TASK_EXPIRY_MS = 10 * 60_000;

/**
 * A task as it reads at `now`: one still queued or sent when its expiry has passed is `expired`, without
 * waiting for the sensor's next session (which is when the store moves a queued task) or forever (a sent
 * task nobody answers). Only the reading changes: a sensor that does answer later still moves the task
 * to answered (a task past its expiry is refused with CLOUD_NOTIFICATION ERROR 87, decisions.md §4).
 */
export function taskAsOf(task: TaskRecord, now: number): TaskRecord {
  const waiting = task.state === 'queued' || task.state === 'sent';
  return waiting && task.expires !== null && task.expires <= now ? { ...task, state: 'expired' } : task;
}

/**
 * The sensor a task is for: its stored record, or only its ids when it holds an open session on this node
 * (the routing of its SELF_TEST then comes from that session: no store read on the API's hot path).
 */
export type TaskTarget = SensorRecord | { sid: string; oid: string };

/** Investigation id of the tasks the persistent isolation flag sends (kept out of outputs: it starts with "__"). */
export const ISOLATION_INVESTIGATION = '__isolation';

export class SensorOfflineError extends Error {
  override name = 'SensorOfflineError';
}

/** A sensor event that answers a task, as the gateway saw it arrive (stored by then). */
export interface TaskAnswer {
  task_id: string;
  event_type: string;
  /** ERROR of the payload, when it has one. */
  error: number | undefined;
  json: string;
}

export interface TaskingDeps {
  store: Store;
  presence: FleetPresence;
  /** Stores events and task rows in one group commit (the event writer); resolves once durable. */
  write: (events: ReadonlyArray<PipelineEvent>, tasks: TaskWrites) => Promise<void>;
  logger: Logger;
  now: () => number;
}

/** What a successful isolation answer says about the host, for the sensor's record. */
const ISOLATION_RESULTS: Record<string, boolean> = { SEGREGATE_NETWORK: true, REJOIN_NETWORK: false };

/**
 * How the events answering tasks move them: a CLOUD_NOTIFICATION without error → received; anything else
 * (the result, or a notification refusing the task) → answered with its ERROR and the event; a successful
 * SEGREGATE_NETWORK / REJOIN_NETWORK also updates the sensor's reported isolation. Each update names the
 * sensor the events came from, so a sensor can only move its own tasks.
 */
export function answerUpdates(sid: string, answers: ReadonlyArray<TaskAnswer>, now: number): TaskUpdate[] {
  return answers.map((a): TaskUpdate => {
    if (a.event_type === 'CLOUD_NOTIFICATION' && (a.error === undefined || a.error === 0)) {
      return { task_id: a.task_id, sid, from: ['queued', 'sent'], to: { state: 'received', at: now } };
    }
    const error = a.error ?? 0;
    const isolated = error === 0 ? ISOLATION_RESULTS[a.event_type] : undefined;
    return { task_id: a.task_id, sid, from: ['queued', 'sent', 'received'], to: { state: 'answered', at: now, error, answer: a.json }, ...(isolated !== undefined ? { isolated } : {}) };
  });
}

export class Tasking {
  constructor(private readonly deps: TaskingDeps) {}

  /**
   * Tasks a sensor with one or more command lines. Sent now when it is online; queued for its next
   * session when `ttlS` is given; otherwise SensorOfflineError. Returns the tasks as recorded.
   */
  async submit(sensor: TaskTarget, commands: ReadonlyArray<string>, options: { investigationId?: string | undefined; ttlS?: number | undefined }): Promise<TaskRecord[]> {
    const { presence, now } = this.deps;
    const t = now();
    const online = await presence.checkOnline(sensor.sid);
    if (!online && options.ttlS === undefined) {
      throw new SensorOfflineError(`sensor ${sensor.sid} is offline: give a ttl (seconds) to queue the task until it connects`);
    }
    const tasks: TaskRecord[] = commands.map((command) => ({
      task_id: newId(), oid: sensor.oid, sid: sensor.sid, command, investigation_id: options.investigationId ?? null, created: t,
      expires: t + (options.ttlS !== undefined ? options.ttlS * 1000 : LIVE_TASK_EXPIRY_MS), state: online ? 'sent' : 'queued', sent_at: online ? t : null,
      received_at: null, answered_at: null, error: null, answer: null,
    }));
    // Recorded (with the SELF_TEST of a self-test request) before it is sent: its answer can only come after.
    const template = online ? (this.deps.presence.localRouting(sensor.sid) ?? (await this.storedRouting(sensor))) : null;
    const selfTests = template ? tasks.filter((task) => isSelfTest(task.command)).map((task) => selfTestEvent(template, task, t)) : [];
    await this.deps.write(selfTests, { create: tasks });
    // Only a task given a time-to-live may wait for the next session; a live one expires with this one.
    // The answer says what became of each task: a session that was gone after all leaves it queued (or expired).
    if (online) {
      for (const task of tasks) {
        if (await this.sendOrRequeue(task, options.ttlS !== undefined)) continue;
        task.state = options.ttlS !== undefined ? 'queued' : 'expired';
        task.sent_at = null;
      }
    }
    return tasks;
  }

  /** Sends the sensor's queued, unexpired tasks over its new session (called right after its welcome). */
  async deliverQueued(sid: string, template: RoutingTemplate): Promise<number> {
    const t = this.deps.now();
    const queued = await this.deps.store.takeQueuedTasks(sid, t);
    if (queued.length === 0) return 0;
    const selfTests = queued.filter((task) => isSelfTest(task.command)).map((task) => selfTestEvent(template, task, t));
    await this.deps.write(selfTests, { update: queued.map((task) => ({ task_id: task.task_id, sid, from: ['queued'], to: { state: 'sent', at: t } })) });
    let sent = 0;
    for (const task of queued) if (await this.sendOrRequeue({ ...task, state: 'sent', sent_at: t }, true)) sent++;
    this.deps.logger.info({ sid, tasks: sent }, 'queued tasks delivered');
    return sent;
  }

  /** Sends a task recorded as sent; when the session went away meanwhile, it waits for the next one (`requeue`) or expires. */
  private async sendOrRequeue(task: TaskRecord, requeue: boolean): Promise<boolean> {
    const message: TaskMessage = {
      t: 'task', task_id: task.task_id, sid: task.sid, command: task.command,
      expiry: Math.floor((task.expires ?? task.created + LIVE_TASK_EXPIRY_MS) / 1000),
      ...(task.investigation_id !== null ? { investigation_id: task.investigation_id } : {}),
    };
    if (await this.deps.presence.sendTask(task.sid, message)) return true;
    await this.deps.store.updateTask(task.task_id, ['sent'], { state: requeue ? 'queued' : 'expired', at: this.deps.now() });
    return false;
  }

  /** The routing of a sensor without an open session on this node (connected to another node), from the store. */
  private async storedRouting(target: TaskTarget): Promise<RoutingTemplate> {
    const sensor = 'iid' in target ? target : await this.deps.store.getSensor(target.sid);
    if (!sensor) throw new Error(`sensor ${target.sid} is not in the store`);
    const tags = (await this.deps.store.getSensorTags(sensor.sid, this.deps.now())).map((t) => t.tag);
    return new RoutingTemplate({
      oid: sensor.oid, iid: sensor.iid, sid: sensor.sid, did: sensor.did, plat: sensor.plat, arch: sensor.arch,
      hostname: sensor.hostname, ext_ip: sensor.ext_ip, int_ip: sensor.int_ip, tags,
    });
  }
}

function isSelfTest(command: string): boolean {
  try {
    return parseCommand(command).name === 'selftest';
  } catch {
    return false;
  }
}

/** SELF_TEST: the cloud's record that a self-test was requested, with the task's investigation id. */
function selfTestEvent(template: RoutingTemplate, task: TaskRecord, now: number): PipelineEvent {
  const event_id = newId();
  const extras = task.investigation_id !== null ? { investigation_id: task.investigation_id } : undefined;
  return {
    oid: task.oid, sid: task.sid, event_type: 'SELF_TEST', event_time: now, event_id, stream: 'event',
    json: template.envelope('SELF_TEST', now, event_id, JSON.stringify(selfTest(Math.floor(now / 1000))), extras),
  };
}
