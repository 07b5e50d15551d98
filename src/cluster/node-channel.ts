// Node-to-node requests over core NATS request/reply: a task, a close, a reconnect request or new tags
// for a sensor whose session is on another node. Each node answers on its own subject with what it did
// to its local session. "No responders" from NATS means the node is gone (its subscription died with its
// connection): the caller then acts on its behalf.
import { ErrorCode, type NatsConnection, type Subscription } from 'nats';
import type { TagState } from '../domain/records.js';
import type { Logger } from '../observability/logger.js';
import type { TaskMessage } from '../protocol/messages.js';
import type { SessionRegistry } from '../sources/gateway/session-registry.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { ClusterNames } from './cluster-names.js';

export type NodeRequest =
  | { op: 'task'; sid: string; task: TaskMessage }
  /** session_id: close only that session (a replaced one), not a newer session of the sensor on the node. */
  | { op: 'close'; sid: string; session_id?: string; code: number; reason: string }
  | { op: 'reconnect'; sid: string; reason: string }
  | { op: 'tags'; sid: string; tags: TagState[] };

/** What came of a request: done, the node had no such session, the node is gone, or no answer in time. */
export type NodeAnswer = 'done' | 'no_session' | 'node_gone' | 'timeout';

const REQUEST_TIMEOUT_MS = 3000;

export class NodeChannel {
  private sub: Subscription | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
    readonly nodeId: string,
    private readonly registry: SessionRegistry,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.sub = this.nc.subscribe(this.names.node(this.nodeId), {
      callback: (err, msg) => {
        if (err) return this.logger.warn({ err }, 'node channel subscription error');
        let answer: boolean;
        try {
          answer = this.handle(JSON.parse(Buffer.from(msg.data).toString('utf8')) as NodeRequest);
        } catch (e) {
          this.logger.warn({ err: e }, 'bad node request');
          answer = false;
        }
        msg.respond(Buffer.from(JSON.stringify({ ok: answer })));
      },
    });
  }

  async request(nodeId: string, req: NodeRequest): Promise<NodeAnswer> {
    try {
      const reply = await this.nc.request(this.names.node(nodeId), Buffer.from(JSON.stringify(req)), { timeout: REQUEST_TIMEOUT_MS });
      return (JSON.parse(Buffer.from(reply.data).toString('utf8')) as { ok: boolean }).ok ? 'done' : 'no_session';
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === ErrorCode.NoResponders) return 'node_gone';
      if (code === ErrorCode.Timeout) return 'timeout';
      throw err;
    }
  }

  /** Applies a request to this node's live session of the sensor; false when it has none. */
  private handle(req: NodeRequest): boolean {
    const session = this.registry.get(req.sid);
    if (!session) return false;
    switch (req.op) {
      case 'task':
        return session.sendTask(req.task);
      case 'close':
        if (req.session_id !== undefined && session.sessionId !== req.session_id) return false;
        session.close(req.code, req.reason);
        return true;
      case 'reconnect':
        session.requestReconnect(CloseCode.serviceRestart, req.reason);
        return true;
      case 'tags':
        session.setTags(req.tags);
        return true;
    }
  }

  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    this.sub = null;
  }
}
