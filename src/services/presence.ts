// What the rest of the cloud may ask of the live fleet: who is online right now (from live sessions,
// never from timestamps), and a few actions on live sessions.
import type { TagState } from '../domain/records.js';
import type { RoutingTemplate } from '../pipeline/envelope.js';
import type { TaskMessage } from '../protocol/messages.js';

export interface LiveSessionInfo {
  sid: string;
  oid: string;
  /** Unix ms when the current session was established. */
  connected_at: number;
  ext_ip: string;
  /** Hostname the live session presented. */
  hostname: string;
}

export interface FleetPresence {
  /** From what this node knows now (in a cluster: its own sessions and the others' as last broadcast). */
  isOnline(sid: string): boolean;
  /** Authoritative, asking the cluster's shared state where there is one. */
  checkOnline(sid: string): Promise<boolean>;
  session(sid: string): LiveSessionInfo | undefined;
  onlineSids(oid: string): string[];
  onlineCount(oid: string): number;
  /** Closes the sensor's live session, if any; returns whether there was one. */
  disconnect(sid: string, code: number, reason: string): boolean;
  /** Asks the sensor's live session to reconnect (USP adapters: `re`; sensors: close 1012); false when it has none. */
  requestReconnect(sid: string, reason: string): boolean;
  /** The sensor's tags changed: events routed from now on carry these (each until its expiry). */
  tagsChanged(sid: string, tags: ReadonlyArray<TagState>): void;
  /** Sends a task over the sensor's live session, wherever it is; false when it has none (or it is not open yet). */
  sendTask(sid: string, task: TaskMessage): Promise<boolean>;
  /**
   * The routing of the sensor's session when this node holds it open (not closing): its organization,
   * host and tags as its own events carry them. Undefined for a sensor offline or connected elsewhere.
   */
  localRouting(sid: string): RoutingTemplate | undefined;
}
