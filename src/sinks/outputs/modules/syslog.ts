// The `syslog` output: every record becomes one RFC 5424 message
// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID SD JSON`, sent over TCP or TLS with octet-counting framing
// (RFC 6587 §3.4.1, RFC 5425: `<byte length> <message>`) or over UDP as one datagram per message (RFC 5426).
//
// What "delivered" means here:
// - TCP/TLS: a batch resolves once its bytes are written to the socket (the write callback), i.e. handed to
//   the kernel. Syslog over TCP has no application-level acknowledgement: bytes written just before the
//   receiver drops the connection can be lost without any error. A connection the receiver closed while
//   idle is noticed before the next batch is written, and a failed batch is retried whole by the delivery
//   loop (at-least-once).
// - UDP: no delivery guarantee at all. A batch resolves once every datagram is handed to the kernel; an ICMP
//   "port unreachable" for an earlier datagram is reported by the next send. A message longer than 65,000
//   bytes is truncated to fit one datagram (cut on a UTF-8 character boundary; the JSON then no longer
//   parses): UDP cannot carry it whole, and dropping it would lose the header too.
// - is_no_header sends only the JSON. Over TCP/TLS each document then ends with LF (newline framing, which
//   JSON receivers expect; JSON never contains a raw LF) instead of being octet-counted.
//
// One connection (or UDP socket) is kept per output; after an error it is dropped and a new one is opened
// lazily by the next send.
import { X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import type { OutputModuleDescriptor } from '../module-descriptor.js';
import { OutputConfigError, type OutputModule, type OutputModuleContext, type OutputRecord } from '../output-module.js';

/** Largest UDP datagram sent (a whole message, header included). */
export const SYSLOG_MAX_DATAGRAM_BYTES = 65_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** A batch whose bytes the kernel has not taken by then (the receiver stopped reading) fails. */
const WRITE_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 2_000;
const KEEPALIVE_DELAY_MS = 60_000;
/** 9999-12-31T23:59:59.999Z: the last time RFC 5424's four-digit year can write. */
const MAX_TIMESTAMP_MS = 253_402_300_799_999;
/** SD-IDs without `@` that RFC 5424 registers with IANA (§7, §9.2). */
const IANA_SD_IDS = new Set(['timeQuality', 'origin', 'meta']);

export const syslogModule: OutputModuleDescriptor = {
  name: 'syslog',
  description: 'Sends each record as an RFC 5424 syslog message (the JSON record as MSG) over TCP, TLS or UDP.',
  fields: {
    dest_host: { type: 'string', required: true, description: 'Receiver as host:port (IPv6 as [addr]:port), e.g. siem.example.com:6514.' },
    protocol: { type: 'string', oneOf: ['tcp', 'udp'], description: 'Transport: tcp (default; octet-counting framing) or udp (one datagram per message, no delivery guarantee).' },
    is_tls: { type: 'boolean', description: 'TCP over TLS (RFC 5425). Not available with udp. Default false.' },
    is_strict_tls: { type: 'boolean', description: "Verify the receiver's certificate and host name. Default false: TLS without verification." },
    ca_cert: { type: 'string', description: 'PEM certificate to trust in addition to the system roots when is_strict_tls is set (e.g. a private CA).' },
    is_no_header: { type: 'boolean', description: 'Send only the JSON record, no syslog header (over TCP/TLS: one JSON document per line). Default false.' },
    structured_data: { type: 'string', description: 'RFC 5424 STRUCTURED-DATA put in every message, e.g. [picket@32473 env="prod"]. Default "-" (none).' },
    app_name: { type: 'string', description: 'APP-NAME of every message: 1-48 printable ASCII characters. Default "picket".' },
    facility: { type: 'integer', min: 0, max: 23, description: 'Syslog facility, 0-23. Default 16 (local0).' },
    severity: { type: 'integer', min: 0, max: 7, description: 'Syslog severity, 0-7. Default 6 (informational).' },
  },
  create: createSyslogOutput,
};

interface SyslogSettings {
  label: string;
  host: string;
  port: number;
  protocol: 'tcp' | 'udp';
  tls: { strict: boolean; ca: string | undefined } | undefined;
  noHeader: boolean;
  appName: string;
  structuredData: string;
  pri: number;
}

function createSyslogOutput(ctx: OutputModuleContext): OutputModule {
  const settings = readSettings(ctx.fields);
  const format = new SyslogFormat(settings, printableAscii(os.hostname(), 255) || '-');
  if (settings.protocol === 'udp') {
    const socket = new DatagramSocket(settings);
    return {
      batching: { maxRecords: 500, maxWaitMs: 0 },
      send: (records) => socket.send(records.map((r) => datagram(format.message(r)))),
      close: () => socket.close(),
    };
  }
  const connection = new StreamConnection(settings);
  return {
    batching: { maxRecords: 500, maxWaitMs: 0 },
    send: (records) => connection.write(format.frames(records)),
    close: () => connection.close(),
  };
}

// ---- configuration ----

function readSettings(fields: OutputModuleContext['fields']): SyslogSettings {
  const dest = stringField(fields, 'dest_host', '');
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(dest) ?? /^([^\s:[\]/]+):(\d{1,5})$/.exec(dest);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535 || (dest.startsWith('[') && net.isIP(m[1]!) !== 6)) {
    throw new OutputConfigError(`dest_host must be host:port (e.g. siem.example.com:514 or [2001:db8::1]:6514), got "${dest}"`, 'dest_host');
  }
  const protocol = stringField(fields, 'protocol', 'tcp');
  if (protocol !== 'tcp' && protocol !== 'udp') throw new OutputConfigError(`protocol must be tcp or udp, got "${protocol}"`, 'protocol');
  const isTls = boolField(fields, 'is_tls');
  const strict = boolField(fields, 'is_strict_tls');
  const ca = stringField(fields, 'ca_cert', '') || undefined;
  if (isTls && protocol === 'udp') throw new OutputConfigError('is_tls needs protocol tcp (syslog over DTLS is not supported)', 'is_tls');
  if (strict && !isTls) throw new OutputConfigError('is_strict_tls needs is_tls', 'is_strict_tls');
  if (ca !== undefined) {
    if (!strict) throw new OutputConfigError('ca_cert is only used to verify the receiver: set is_tls and is_strict_tls', 'ca_cert');
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new OutputConfigError(`ca_cert is not a PEM certificate: ${(err as Error).message}`, 'ca_cert');
    }
  }
  const appName = stringField(fields, 'app_name', 'picket');
  if (!/^[\x21-\x7e]{1,48}$/.test(appName)) throw new OutputConfigError('app_name must be 1-48 printable ASCII characters without spaces', 'app_name');
  const structuredData = stringField(fields, 'structured_data', '-');
  const sdError = structuredDataError(structuredData);
  if (sdError) throw new OutputConfigError(`structured_data is not RFC 5424 STRUCTURED-DATA: ${sdError}`, 'structured_data');
  const facility = intField(fields, 'facility', 16, 0, 23);
  const severity = intField(fields, 'severity', 6, 0, 7);
  return {
    label: `syslog ${isTls ? 'tls' : protocol} ${dest}`,
    host: m[1]!,
    port,
    protocol,
    tls: isTls ? { strict, ca } : undefined,
    noHeader: boolField(fields, 'is_no_header'),
    appName,
    structuredData,
    pri: facility * 8 + severity,
  };
}

function stringField(fields: OutputModuleContext['fields'], name: string, fallback: string): string {
  const value = fields[name];
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string') throw new OutputConfigError(`${name} must be a string`, name);
  return value;
}

function boolField(fields: OutputModuleContext['fields'], name: string): boolean {
  const value = fields[name];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new OutputConfigError(`${name} must be a boolean`, name);
  return value;
}

function intField(fields: OutputModuleContext['fields'], name: string, fallback: number, min: number, max: number): number {
  const value = fields[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OutputConfigError(`${name} must be an integer from ${min} to ${max}`, name);
  }
  return value;
}

/** Why `sd` is not RFC 5424 STRUCTURED-DATA (`-` or one or more SD-ELEMENTs), or undefined if it is. */
export function structuredDataError(sd: string): string | undefined {
  if (sd === '-') return undefined;
  const seen = new Set<string>();
  let i = 0;
  // SD-NAME: 1-32 printable ASCII except '=', SP, ']' and '"'.
  const name = (what: string): string => {
    const start = i;
    while (i < sd.length && /[\x21-\x7e]/.test(sd[i]!) && !'= ]"'.includes(sd[i]!)) i++;
    const n = sd.slice(start, i);
    if (n.length === 0 || n.length > 32) throw new Error(`${what} at position ${start} must be 1-32 printable ASCII characters other than = ] " and space`);
    return n;
  };
  try {
    while (i < sd.length) {
      if (sd[i] !== '[') throw new Error(`expected "[" at position ${i}`);
      i++;
      const id = name('SD-ID');
      if (id.includes('@') ? !/^[^@]+@\d+(\.\d+)*$/.test(id) : !IANA_SD_IDS.has(id)) {
        throw new Error(`SD-ID "${id}" must be name@<enterprise number> (e.g. picket@32473) or one registered with IANA`);
      }
      if (seen.has(id)) throw new Error(`SD-ID "${id}" appears twice`);
      seen.add(id);
      for (;;) {
        if (sd[i] === ']') {
          i++;
          break;
        }
        if (sd[i] !== ' ') throw new Error(`expected " " or "]" at position ${i}`);
        i++;
        name('PARAM-NAME');
        if (sd[i] !== '=' || sd[i + 1] !== '"') throw new Error(`expected ="value" at position ${i}`);
        i += 2;
        for (;;) {
          const c = sd[i];
          if (c === undefined) throw new Error('unterminated PARAM-VALUE');
          if (c < ' ' || c === '\x7f') throw new Error(`control character in PARAM-VALUE at position ${i}`);
          if (c === '"') break;
          if (c === ']') throw new Error(`"]" in PARAM-VALUE at position ${i} must be escaped as \\]`);
          i += c === '\\' ? 2 : 1;
        }
        i++;
      }
    }
  } catch (err) {
    return (err as Error).message;
  }
  return seen.size > 0 ? undefined : 'empty';
}

// ---- messages ----

class SyslogFormat {
  /** `<PRI>1 `, and ` APP-NAME - ` (PROCID is always nil). */
  private readonly priVersion: string;
  private readonly appProc: string;
  private readonly sdSpace: string;

  constructor(
    private readonly settings: SyslogSettings,
    private readonly localHostname: string,
  ) {
    this.priVersion = `<${settings.pri}>1 `;
    this.appProc = ` ${settings.appName} - `;
    this.sdSpace = ` ${settings.structuredData} `;
  }

  message(record: OutputRecord): string {
    if (this.settings.noHeader) return record.json;
    return this.priVersion + timestamp(record.event_time) + ' ' + this.hostname(record) + this.appProc + (printableAscii(record.event_type, 32) || '-') + this.sdSpace + record.json;
  }

  /** A TCP/TLS batch: octet-counted messages, or JSON lines without the header. */
  frames(records: ReadonlyArray<OutputRecord>): string {
    let out = '';
    for (const record of records) {
      const message = this.message(record);
      if (this.settings.noHeader) {
        // Raw CR/LF can only be insignificant whitespace in valid JSON: replacing it keeps the framing sound.
        out += (/[\r\n]/.test(message) ? message.replace(/[\r\n]+/g, ' ') : message) + '\n';
      } else {
        out += Buffer.byteLength(message) + ' ' + message;
      }
    }
    return out;
  }

  private hostname(record: OutputRecord): string {
    const routing = record.body.routing;
    const host = routing && typeof routing === 'object' ? (routing as Record<string, unknown>).hostname : undefined;
    return (typeof host === 'string' && printableAscii(host, 255)) || this.localHostname;
  }
}

/** RFC 5424 TIMESTAMP of an event time (Unix ms), or NILVALUE when the event has none. */
function timestamp(ms: number): string {
  return Number.isFinite(ms) && ms > 0 && ms <= MAX_TIMESTAMP_MS ? new Date(ms).toISOString() : '-';
}

/** A header field: PRINTUSASCII only (others become `_`), at most `max` characters. */
function printableAscii(value: string, max: number): string {
  const cut = value.length > max ? value.slice(0, max) : value;
  return /^[\x21-\x7e]*$/.test(cut) ? cut : cut.replace(/[^\x21-\x7e]/g, '_');
}

function datagram(message: string): Buffer {
  const bytes = Buffer.from(message);
  if (bytes.length <= SYSLOG_MAX_DATAGRAM_BYTES) return bytes;
  let end = SYSLOG_MAX_DATAGRAM_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // not inside a UTF-8 sequence
  return bytes.subarray(0, end);
}

// ---- transports ----

/** One persistent TCP or TLS connection, opened on first use and after an error. */
class StreamConnection {
  private socket: net.Socket | undefined;
  private opening: Promise<net.Socket> | undefined;
  private pending: net.Socket | undefined;
  private closed = false;

  constructor(private readonly settings: SyslogSettings) {}

  async write(payload: string): Promise<void> {
    // One turn of the event loop first, so a connection the receiver closed while idle is seen as closed
    // and the batch goes to a new connection instead of into the dead one.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const socket = await this.connect();
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.off('close', onClose);
        if (!err) return resolve();
        this.drop(socket);
        reject(this.error(err));
      };
      const onClose = (): void => finish(new Error('connection closed while writing'));
      const timer = setTimeout(() => finish(new Error(`write not taken within ${WRITE_TIMEOUT_MS} ms (receiver not reading)`)), WRITE_TIMEOUT_MS);
      socket.once('close', onClose);
      socket.write(payload, finish);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending?.destroy();
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  private connect(): Promise<net.Socket> {
    if (this.closed) return Promise.reject(new Error(`${this.settings.label}: output closed`));
    if (this.socket) return Promise.resolve(this.socket);
    this.opening ??= this.open().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private open(): Promise<net.Socket> {
    const { host, port, tls: tlsSettings } = this.settings;
    return new Promise((resolve, reject) => {
      const socket = tlsSettings
        ? tls.connect({
            host,
            port,
            servername: net.isIP(host) ? undefined : host,
            rejectUnauthorized: tlsSettings.strict,
            ca: tlsSettings.ca ? [...tls.rootCertificates, tlsSettings.ca] : undefined,
          })
        : net.connect({ host, port });
      this.pending = socket;
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      let settled = false;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        this.pending = undefined;
        socket.off('error', fail).off('close', onClose);
        return true;
      };
      const fail = (err: Error): void => {
        if (!settle()) return;
        socket.destroy();
        reject(this.error(err));
      };
      const onClose = (): void => fail(new Error(this.closed ? 'output closed' : 'connection closed while connecting'));
      socket.once('error', fail);
      socket.once('close', onClose);
      socket.once(tlsSettings ? 'secureConnect' : 'connect', () => {
        if (this.closed) return fail(new Error('output closed'));
        if (!settle()) return;
        this.adopt(socket);
        resolve(socket);
      });
    });
  }

  private adopt(socket: net.Socket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    // Receivers send nothing; reading lets us see their FIN (and TLS alerts) as soon as it arrives.
    socket.on('data', () => {});
    socket.on('end', () => this.drop(socket));
    socket.on('error', () => this.drop(socket));
    socket.on('close', () => this.drop(socket));
  }

  private drop(socket: net.Socket): void {
    if (this.socket === socket) this.socket = undefined;
    socket.destroy();
  }

  private error(err: Error): Error {
    return new Error(`${this.settings.label}: ${err.message}`, { cause: err });
  }
}

/** A connected UDP socket (the name is resolved once per socket). */
class DatagramSocket {
  private socket: Promise<dgram.Socket> | undefined;
  /** An asynchronous error (ICMP port unreachable) for datagrams already sent, reported by the next send. */
  private lateError: Error | undefined;
  private closed = false;

  constructor(private readonly settings: SyslogSettings) {}

  async send(datagrams: Buffer[]): Promise<void> {
    // Let an ICMP error for the previous batch arrive and be reported now.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closed) throw new Error(`${this.settings.label}: output closed`);
    if (this.lateError) {
      const err = this.lateError;
      this.lateError = undefined;
      throw this.error(err, ' (for an earlier datagram)');
    }
    this.socket ??= this.open();
    let socket: dgram.Socket;
    try {
      socket = await this.socket;
    } catch (err) {
      this.socket = undefined;
      throw this.error(err as Error);
    }
    await new Promise<void>((resolve, reject) => {
      let waiting = datagrams.length;
      let failed = false;
      if (waiting === 0) return resolve();
      for (const d of datagrams) {
        socket.send(d, (err) => {
          if (failed) return;
          if (err) {
            failed = true;
            return reject(this.error(err));
          }
          if (--waiting === 0) resolve();
        });
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.socket;
    this.socket = undefined;
    const socket = await pending?.catch(() => undefined);
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private async open(): Promise<dgram.Socket> {
    const { address, family } = await lookup(this.settings.host);
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.connect(this.settings.port, address, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      if (this.closed) throw new Error('output closed');
    } catch (err) {
      socket.close();
      throw err;
    }
    socket.on('error', (err) => (this.lateError = err));
    return socket;
  }

  private error(err: Error, note = ''): Error {
    return new Error(`${this.settings.label}: ${err.message}${note}`, { cause: err });
  }
}
