// The `nats` output: publishes each record's JSON to a subject (placeholders {oid}, {sid}, {event_type}),
// on core NATS or through JetStream. One connection per output, opened on the first send and kept
// reconnecting by the nats client. A send resolves only when every record is with the server: core NATS
// after a flush (PING/PONG behind the publishes), JetStream after every PubAck.
import { connect, Events, type JetStreamClient, type NatsConnection } from 'nats';
import type { OutputModuleDescriptor } from '../module-descriptor.js';
import { OutputConfigError, type OutputModule, type OutputModuleContext, type OutputRecord } from '../output-module.js';
import { optionalBoolean, optionalString, requiredString } from './webhook-request.js';

const CONNECT_TIMEOUT_MS = 10_000;
/** Longest wait for the flush or for a PubAck before the send fails (and the batch is retried). */
const PUBLISH_TIMEOUT_MS = 30_000;
const PLACEHOLDER = /\{([^{}]*)\}/g;
const PLACEHOLDER_NAMES = new Set(['oid', 'sid', 'event_type']);
/** Characters that would split, widen or break a subject token. */
const NOT_IN_TOKEN = /[\s.*>]/g;

export const natsModule: OutputModuleDescriptor = {
  name: 'nats',
  description: 'Publishes every record as a JSON message to a NATS subject, on core NATS or JetStream.',
  fields: {
    dest_host: { type: 'string', required: true, description: 'Server URL nats://host:port, or several separated by commas (one cluster).' },
    subject: {
      type: 'string',
      required: true,
      description: 'Subject to publish to; {oid}, {sid} ("none" when the event has no sensor) and {event_type} are replaced per record.',
    },
    is_jetstream: {
      type: 'boolean',
      description: 'Publish through JetStream and wait for each PubAck; a stream capturing the subjects must exist. Retries are de-duplicated by message id.',
    },
    username: { type: 'string', description: 'User name, with password.' },
    password: { type: 'string', secret: true, description: 'Password of username.' },
    token: { type: 'string', secret: true, description: 'Authentication token (instead of username/password).' },
  },
  create: (ctx) => new NatsOutput(ctx),
};

interface Connection {
  nc: NatsConnection;
  js: JetStreamClient | undefined;
}

class NatsOutput implements OutputModule {
  readonly batching = { maxRecords: 1000, maxWaitMs: 0 };
  private readonly servers: string[];
  private readonly subjectOf: (record: OutputRecord) => string;
  private readonly jetstream: boolean;
  private readonly auth: { user: string; pass: string } | { token: string } | Record<string, never>;
  /** Start of every error message: `nats <servers>`. */
  private readonly label: string;
  /** JetStream message ids are `<oid>/<output name>/<seq>`. */
  private readonly msgIdPrefix: string;
  private connection: Promise<Connection> | undefined;
  /** Between a disconnect and the client's reconnect; sends fail fast rather than pile up in its buffer. */
  private disconnected = false;
  /** Sends waiting on the server, failed at once when the connection drops or the output closes. */
  private readonly onDisconnect = new Set<(err: Error) => void>();
  private closed = false;

  constructor(private readonly ctx: OutputModuleContext) {
    this.servers = parseServers(requiredString(ctx.fields, 'dest_host'));
    this.subjectOf = compileSubject(requiredString(ctx.fields, 'subject'));
    this.jetstream = optionalBoolean(ctx.fields, 'is_jetstream');
    this.auth = parseAuth(ctx.fields);
    this.label = `nats ${this.servers.join(',')}`;
    this.msgIdPrefix = `${ctx.oid}/${ctx.name}/`;
  }

  async send(records: ReadonlyArray<OutputRecord>): Promise<void> {
    if (records.length === 0) return;
    const { nc, js } = await this.connected();
    if (this.disconnected) throw new Error(`${this.label}: disconnected from the server, the client is reconnecting`);
    if (js) await this.publishJetStream(js, records);
    else await this.publishCore(nc, records);
  }

  async close(): Promise<void> {
    this.closed = true;
    const closing = new Error(`${this.label}: the output is closing`);
    for (const fail of this.onDisconnect) fail(closing);
    const connection = this.connection;
    this.connection = undefined;
    if (!connection) return;
    try {
      await (await connection).nc.close();
    } catch {
      // it never connected: nothing to release
    }
  }

  private connected(): Promise<Connection> {
    if (this.closed) return Promise.reject(new Error(`${this.label}: the output is closed`));
    if (!this.connection) {
      const connection = this.open();
      this.connection = connection;
      // A failed attempt is forgotten, so the next send tries again.
      connection.catch(() => {
        if (this.connection === connection) this.connection = undefined;
      });
    }
    return this.connection;
  }

  private async open(): Promise<Connection> {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: this.servers,
        ...this.auth,
        name: `picket output ${this.ctx.oid}/${this.ctx.name}`,
        timeout: CONNECT_TIMEOUT_MS,
        // The output lives as long as its configuration: keep reconnecting, never give the connection up.
        maxReconnectAttempts: -1,
      });
    } catch (err) {
      throw new Error(`${this.label}: cannot connect: ${natsErrorText(err)}`);
    }
    this.disconnected = false;
    void this.followStatus(nc);
    void nc.closed().then(() => {
      // Closed for good (close(), or the server refused our credentials): the next send connects anew.
      if (this.connection && !this.closed) this.connection = undefined;
    });
    return { nc, js: this.jetstream ? nc.jetstream({ timeout: PUBLISH_TIMEOUT_MS }) : undefined };
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === Events.Disconnect) {
        this.disconnected = true;
        const err = new Error(`${this.label}: disconnected from the server before it confirmed the batch, the client is reconnecting`);
        for (const fail of this.onDisconnect) fail(err);
      } else if (status.type === Events.Reconnect) {
        this.disconnected = false;
      }
    }
  }

  /** `promise`, unless the connection drops, the output closes or PUBLISH_TIMEOUT_MS passes first. */
  private async confirmed<T>(promise: Promise<T>, timeoutMessage: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let fail: ((err: Error) => void) | undefined;
    const failure = new Promise<never>((_, reject) => {
      fail = reject;
      timer = setTimeout(() => reject(new Error(timeoutMessage)), PUBLISH_TIMEOUT_MS);
    });
    this.onDisconnect.add(fail!);
    try {
      return await Promise.race([promise, failure]);
    } finally {
      clearTimeout(timer);
      this.onDisconnect.delete(fail!);
    }
  }

  private async publishCore(nc: NatsConnection, records: ReadonlyArray<OutputRecord>): Promise<void> {
    for (const record of records) {
      const subject = this.subjectOf(record);
      try {
        nc.publish(subject, Buffer.from(record.json, 'utf8'));
      } catch (err) {
        throw new Error(`${this.label}: cannot publish record ${record.seq} to "${subject}": ${natsErrorText(err)}`);
      }
    }
    await this.confirmed(nc.flush(), `${this.label}: the server did not confirm the publishes within ${PUBLISH_TIMEOUT_MS / 1000} s`);
  }

  private async publishJetStream(js: JetStreamClient, records: ReadonlyArray<OutputRecord>): Promise<void> {
    // All publishes go out at once, in order on the one connection, and the acks are awaited together. The
    // message id makes JetStream drop the copies a retried batch sends again (within its duplicate window).
    const subjects = records.map((record) => this.subjectOf(record));
    const acks = await this.confirmed(
      Promise.allSettled(
        records.map((record, i) => js.publish(subjects[i]!, Buffer.from(record.json, 'utf8'), { msgID: `${this.msgIdPrefix}${record.seq}`, timeout: PUBLISH_TIMEOUT_MS })),
      ),
      `${this.label}: no PubAcks within ${PUBLISH_TIMEOUT_MS / 1000} s`,
    );
    const failed = acks.findIndex((ack) => ack.status === 'rejected');
    if (failed < 0) return;
    const err = (acks[failed] as PromiseRejectedResult).reason;
    const subject = subjects[failed]!;
    const code = (err as { code?: unknown }).code;
    if (code === '503') {
      throw new Error(`${this.label}: no JetStream stream captures subject "${subject}" (create the stream first, or check that JetStream is enabled on the server)`);
    }
    if (code === 'TIMEOUT') throw new Error(`${this.label}: no PubAck for "${subject}" within ${PUBLISH_TIMEOUT_MS / 1000} s`);
    throw new Error(`${this.label}: JetStream refused record ${records[failed]!.seq} on "${subject}": ${natsErrorText(err)}`);
  }
}

function parseServers(value: string): string[] {
  const servers = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (servers.length === 0) throw new OutputConfigError('dest_host is required', 'dest_host');
  for (const server of servers) {
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new OutputConfigError(`dest_host: "${server}" is not a nats://host:port URL`, 'dest_host');
    }
    if (url.protocol !== 'nats:' || !url.hostname) throw new OutputConfigError(`dest_host: "${server}" is not a nats://host:port URL`, 'dest_host');
    if (url.username || url.password) throw new OutputConfigError('dest_host must not contain credentials: use username/password or token', 'dest_host');
    if (url.pathname || url.search || url.hash) throw new OutputConfigError(`dest_host: "${server}" must be just nats://host:port`, 'dest_host');
  }
  return servers;
}

function parseAuth(fields: OutputModuleContext['fields']): { user: string; pass: string } | { token: string } | Record<string, never> {
  const user = optionalString(fields, 'username');
  const pass = optionalString(fields, 'password');
  const token = optionalString(fields, 'token');
  if (token !== undefined && (user !== undefined || pass !== undefined)) {
    throw new OutputConfigError('use either token or username/password, not both', 'token');
  }
  if (token !== undefined) return { token };
  if (user === undefined && pass === undefined) return {};
  if (user === undefined) throw new OutputConfigError('password is set but username is not', 'username');
  if (pass === undefined) throw new OutputConfigError('username is set but password is not', 'password');
  return { user, pass };
}

/**
 * Turns the subject template into a function of the record. Replaced values have whitespace, dots and
 * wildcards turned into `_`, so each placeholder stays exactly one subject token.
 */
export function compileSubject(template: string): (record: OutputRecord) => string {
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (!PLACEHOLDER_NAMES.has(name!)) throw new OutputConfigError(`subject: unknown placeholder {${name}} (use {oid}, {sid} or {event_type})`, 'subject');
  }
  const sample = template.replace(PLACEHOLDER, 'x');
  if (sample.split('.').some((token) => token === '' || /[\s*>{}]/.test(token))) {
    throw new OutputConfigError(`subject "${template}" is not a valid NATS subject to publish to (dot-separated tokens, no spaces or wildcards)`, 'subject');
  }
  const parts = template.split(PLACEHOLDER);
  if (parts.length === 1) return () => template;
  // split() with a capturing group alternates literal text (even indexes) and placeholder names (odd).
  return (record) => {
    let subject = '';
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i % 2 === 0) subject += part;
      else subject += token(part === 'oid' ? record.oid : part === 'sid' ? (record.sid ?? 'none') : record.event_type);
    }
    return subject;
  };
}

function token(value: string): string {
  return value === '' ? '_' : value.replace(NOT_IN_TOKEN, '_');
}

function natsErrorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  // The server's -ERR texts arrive quoted: 'Authorization Violation'.
  const message = err.message.replace(/^'(.*)'$/, '$1');
  return typeof code === 'string' && code !== message ? `${message} (${code})` : message;
}
