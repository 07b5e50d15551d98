// The live fleet on this node: which sensors hold a session right now. Online status comes only from here.
import { CloseCode } from '../../protocol/close-codes.js';
import type { TagState } from '../../domain/records.js';
import type { RoutingTemplate } from '../../pipeline/envelope.js';
import type { TaskMessage } from '../../protocol/messages.js';
import type { FleetPresence, LiveSessionInfo } from '../../services/presence.js';

/** What the registry needs from a live session. */
export interface RegisteredSession extends LiveSessionInfo {
  /** Unique per session (a reconnect of the same sensor is another session). */
  readonly sessionId: string;
  /** Host fingerprint the live session presented ('' when the sensor sends none). */
  fingerprint: string;
  close(code: number, reason: string): void;
  /** Asks the sensor to reconnect (USP adapters get `re` first), then closes. */
  requestReconnect(code: number, reason: string): void;
  setTags(tags: ReadonlyArray<TagState>): void;
  /** Sends a task; false when the session is not open. */
  sendTask(task: TaskMessage): boolean;
  /** The routing its events carry while it is open and not closing; null otherwise. */
  openRouting(): RoutingTemplate | null;
}

export class SessionRegistry implements FleetPresence {
  private readonly bySid = new Map<string, RegisteredSession>();
  private readonly byOrg = new Map<string, Set<string>>();

  /** Registers a session; returns the session it replaced for the same sensor, if any. */
  add(session: RegisteredSession): RegisteredSession | undefined {
    const previous = this.bySid.get(session.sid);
    this.bySid.set(session.sid, session);
    let set = this.byOrg.get(session.oid);
    if (!set) this.byOrg.set(session.oid, (set = new Set()));
    set.add(session.sid);
    return previous;
  }

  /** Removes the session if it is still the registered one for its sensor. */
  remove(session: RegisteredSession): void {
    if (this.bySid.get(session.sid) !== session) return;
    this.bySid.delete(session.sid);
    const set = this.byOrg.get(session.oid);
    if (set) {
      set.delete(session.sid);
      if (set.size === 0) this.byOrg.delete(session.oid);
    }
  }

  get size(): number {
    return this.bySid.size;
  }

  all(): IterableIterator<RegisteredSession> {
    return this.bySid.values();
  }

  get(sid: string): RegisteredSession | undefined {
    return this.bySid.get(sid);
  }

  isOnline(sid: string): boolean {
    return this.bySid.has(sid);
  }

  session(sid: string): LiveSessionInfo | undefined {
    const s = this.bySid.get(sid);
    return s ? { sid: s.sid, oid: s.oid, connected_at: s.connected_at, ext_ip: s.ext_ip, hostname: s.hostname } : undefined;
  }

  onlineSids(oid: string): string[] {
    return [...(this.byOrg.get(oid) ?? [])];
  }

  onlineCount(oid: string): number {
    return this.byOrg.get(oid)?.size ?? 0;
  }

  disconnect(sid: string, code: number, reason: string): boolean {
    const s = this.bySid.get(sid);
    if (!s) return false;
    s.close(code, reason);
    return true;
  }

  requestReconnect(sid: string, reason: string): boolean {
    const s = this.bySid.get(sid);
    if (!s) return false;
    s.requestReconnect(CloseCode.serviceRestart, reason);
    return true;
  }

  tagsChanged(sid: string, tags: ReadonlyArray<TagState>): void {
    this.bySid.get(sid)?.setTags(tags);
  }

  async sendTask(sid: string, task: TaskMessage): Promise<boolean> {
    return this.bySid.get(sid)?.sendTask(task) ?? false;
  }

  async checkOnline(sid: string): Promise<boolean> {
    return this.bySid.has(sid);
  }

  localRouting(sid: string): RoutingTemplate | undefined {
    return this.bySid.get(sid)?.openRouting() ?? undefined;
  }
}
