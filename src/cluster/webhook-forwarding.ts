// Webhook posts in a cluster (WebhookRelay): a cloud adapter of type webhook runs on one node, but its
// senders post to whichever node the load balancer picks. The node running the adapter answers requests
// on `<prefix>.webhook.<oid>.<name>`; any other node forwards the post there over NATS request/reply
// (msgpack: the secret is checked by the receiving node, as for a direct post) and relays the outcome.
import { pack, unpack } from 'msgpackr';
import { ErrorCode, type NatsConnection, type Subscription } from 'nats';
import type { Logger } from '../observability/logger.js';
import type { WebhookOutcome, WebhookPost, WebhookRelay } from '../services/cloud-adapter-control.js';
import type { ClusterNames } from './cluster-names.js';

const FORWARD_TIMEOUT_MS = 10_000;
/** Room for the subject, headers and the post's other fields within NATS's max_payload. */
const ENVELOPE_BYTES = 4096;

export class WebhookForwarding implements WebhookRelay {
  constructor(
    private readonly nc: NatsConnection,
    private readonly names: ClusterNames,
    private readonly logger: Logger,
  ) {}

  private subject(oid: string, name: string): string {
    // Adapter names may hold characters NATS subjects cannot: hex keeps the subject one token.
    return `${this.names.webhookPrefix}.${oid.toLowerCase()}.${Buffer.from(name, 'utf8').toString('hex')}`;
  }

  async forward(post: WebhookPost): Promise<WebhookOutcome | null> {
    const maxPayload = this.nc.info?.max_payload ?? 1_048_576;
    if (post.body.length + ENVELOPE_BYTES > maxPayload) {
      this.logger.warn({ oid: post.oid, cloud_adapter: post.name, bytes: post.body.length, max_payload: maxPayload }, 'webhook post too large to forward over NATS');
      return null;
    }
    try {
      const reply = await this.nc.request(this.subject(post.oid, post.name), pack(post), { timeout: FORWARD_TIMEOUT_MS });
      return unpack(reply.data) as WebhookOutcome;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== ErrorCode.NoResponders) this.logger.warn({ err, oid: post.oid, cloud_adapter: post.name }, 'could not forward a webhook post');
      return null;
    }
  }

  serve(oid: string, name: string, handle: (post: WebhookPost) => Promise<WebhookOutcome>): () => void {
    const sub: Subscription = this.nc.subscribe(this.subject(oid, name), {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          let outcome: WebhookOutcome;
          try {
            const raw = unpack(msg.data) as WebhookPost & { body: Uint8Array };
            outcome = await handle({ ...raw, body: Buffer.from(raw.body) });
          } catch (e) {
            this.logger.warn({ err: e }, 'bad forwarded webhook post');
            outcome = { status: 'unavailable' };
          }
          msg.respond(pack(outcome));
        })();
      },
    });
    return () => sub.unsubscribe();
  }
}
