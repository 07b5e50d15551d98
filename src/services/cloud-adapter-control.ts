// What the API may ask of this node's cloud adapters (implemented by
// sources/cloud-adapters/cloud-adapter-manager.ts through server.ts): parse and check a configuration,
// (re)start or stop an adapter, its live status, re-enable a disabled one, and hand an inbound webhook
// post to its adapter. The API never imports the sources themselves.
import type { CloudAdapterConfig } from '../domain/cloud-adapters.js';
import type { TagState } from '../domain/records.js';

export type CloudAdapterDefinition = Omit<CloudAdapterConfig, 'oid' | 'enabled' | 'disabled_at' | 'disabled_error' | 'created' | 'updated'>;

export interface CloudAdapterRuntimeStatus {
  state: 'starting' | 'running' | 'retrying' | 'disabled' | 'stopped';
  /** The adapter's sensor (sid = UUIDv5(oid, "cloud:" + name)). */
  sid: string;
  /** When the current run of failures began (ms), null when the last attempt succeeded. */
  failing_since: number | null;
  failures: number;
  last_error: string | null;
  last_error_at: number | null;
  /** Events delivered since this node started it. */
  events: number;
}

export class CloudAdapterDefinitionError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** An inbound webhook post as the API received it. */
export interface WebhookPost {
  oid: string;
  name: string;
  /** The `x-picket-secret` header, or the password of HTTP basic auth. */
  secret: string | undefined;
  contentType: string | undefined;
  body: Buffer;
}

export type WebhookOutcome =
  | { status: 'accepted'; events: number }
  /** No such webhook adapter, or a wrong secret: the same answer, so names are not revealed. */
  | { status: 'unauthorized' }
  | { status: 'disabled' }
  /** The adapter is starting (its sensor is not connected yet): retry shortly. */
  | { status: 'unavailable' }
  | { status: 'invalid'; error: string };

/**
 * In a cluster, hands a webhook POST to the node running its adapter. null from forward(): no node runs
 * it (or the post cannot be carried); serve() receives what other nodes forward while it runs here.
 */
export interface WebhookRelay {
  forward(post: WebhookPost): Promise<WebhookOutcome | null>;
  serve(oid: string, name: string, handle: (post: WebhookPost) => Promise<WebhookOutcome>): () => void;
}

export interface CloudAdapterControl {
  /** Validates a definition from the API body; throws CloudAdapterDefinitionError naming the field. */
  parse(raw: Record<string, unknown>): CloudAdapterDefinition;
  /** The configuration as shown to users (secrets masked). */
  view(config: CloudAdapterConfig): Record<string, unknown>;
  /** Starts, restarts or (when disabled) stops the adapter with this configuration (already stored). */
  apply(config: CloudAdapterConfig): Promise<void>;
  remove(oid: string, name: string): Promise<void>;
  status(oid: string, name: string): CloudAdapterRuntimeStatus | undefined;
  /** Stores and delivers the records of an inbound webhook post; resolves once they are durable. */
  receiveWebhook(post: WebhookPost): Promise<WebhookOutcome>;
  /** A sensor's tags changed: when it is an adapter running here, its next events carry these. */
  tagsChanged(sid: string, tags: ReadonlyArray<TagState>): void;
}
