// A real rsyslogd for syslog output tests, started from a generated configuration: plain TCP (imptcp,
// octet counting), TLS (imtcp with the gtls driver and a self-signed certificate) and UDP (imudp). It
// writes every message it receives to a file per listener as JSON: the raw message plus its own RFC 5424
// parse of the header.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, ManagedProcess } from './processes.js';
import { waitFor } from './wait.js';

function findRsyslogd(): string | undefined {
  for (const candidate of ['/usr/sbin/rsyslogd', '/usr/local/sbin/rsyslogd']) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v rsyslogd'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const RSYSLOGD = findRsyslogd();
if (!RSYSLOGD && process.env.CI === 'true') throw new Error('rsyslogd is required for the syslog output tests in CI (apt-get install -y rsyslog rsyslog-gnutls)');
if (!RSYSLOGD) console.warn('skipping syslog output tests against rsyslog: rsyslogd not found (apt-get install rsyslog rsyslog-gnutls; they never skip with CI=true)');

/** One message as rsyslogd received it: the raw bytes after framing, and rsyslogd's parse of them. */
export interface Received {
  raw: string;
  pri: string;
  version: string;
  timestamp: string;
  hostname: string;
  app_name: string;
  procid: string;
  msgid: string;
  sd: string;
  msg: string;
}

export type Listener = 'tcp' | 'tls' | 'udp';

export class Rsyslog {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'picket-rsyslog-'));
  readonly certPem: string;
  private proc: ManagedProcess | undefined;

  private constructor(readonly ports: Record<Listener, number>) {
    const cert = path.join(this.dir, 'cert.pem');
    const key = path.join(this.dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    this.certPem = readFileSync(cert, 'utf8');
    mkdirSync(path.join(this.dir, 'work'));
    const fields = ['raw:rawmsg', 'pri:pri', 'version:protocol-version', 'hostname:hostname', 'app_name:app-name', 'procid:procid', 'msgid:msgid', 'sd:structured-data', 'msg:msg'];
    const file = (l: Listener): string => path.join(this.dir, `${l}.log`);
    writeFileSync(path.join(this.dir, 'rsyslog.conf'), `
global(processInternalMessages="on" workDirectory="${path.join(this.dir, 'work')}" maxMessageSize="256k" net.enableDNS="off"
       defaultNetstreamDriverCAFile="${cert}" defaultNetstreamDriverCertFile="${cert}" defaultNetstreamDriverKeyFile="${key}")
module(load="imptcp")
module(load="imudp")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="received" type="list" option.jsonf="on") {
${fields.map((f) => `  property(outname="${f.split(':')[0]}" name="${f.split(':')[1]}" format="jsonf")`).join('\n')}
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
}
ruleset(name="tcp") { action(type="omfile" file="${file('tcp')}" template="received") }
ruleset(name="tls") { action(type="omfile" file="${file('tls')}" template="received") }
ruleset(name="udp") { action(type="omfile" file="${file('udp')}" template="received") }
input(type="imptcp" address="127.0.0.1" port="${ports.tcp}" ruleset="tcp" supportOctetCountedFraming="on" notifyOnConnectionClose="on")
# rsyslogd's own messages (connections closed by the sender, errors).
action(type="omfile" file="${path.join(this.dir, 'internal.log')}")
input(type="imtcp" address="127.0.0.1" port="${ports.tls}" ruleset="tls")
input(type="imudp" address="127.0.0.1" port="${ports.udp}" ruleset="udp")
`);
  }

  static async create(): Promise<Rsyslog> {
    const tcp = await freePort();
    let tls = await freePort();
    while (tls === tcp) tls = await freePort();
    const udp = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
    return new Rsyslog({ tcp, tls, udp });
  }

  /** Starts rsyslogd and waits until each of its listeners takes messages. */
  async start(): Promise<void> {
    const proc = spawn(RSYSLOGD!, ['-n', '-f', path.join(this.dir, 'rsyslog.conf'), '-i', path.join(this.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const managed = new ManagedProcess(proc);
    this.proc = managed;
    const alive = (): void => {
      if (!managed.running) throw new Error(`rsyslogd exited\n${managed.output()}`);
    };
    for (const port of [this.ports.tcp, this.ports.tls]) {
      await waitFor(() => (alive(), canConnect(port)), { timeoutMs: 10_000, message: `rsyslogd listening on tcp ${port}` });
    }
    // UDP has no handshake: send probes until one is written out.
    const probe = dgram.createSocket('udp4');
    try {
      await waitFor(
        () => {
          alive();
          probe.send('<134>1 - - picket-probe - - - probe', this.ports.udp, '127.0.0.1');
          return this.lines('udp').some((m) => m.app_name === 'picket-probe');
        },
        { timeoutMs: 10_000, intervalMs: 100, message: 'rsyslogd receiving on udp' },
      );
    } finally {
      probe.close();
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc?.running) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await proc.exited;
    clearTimeout(killer);
  }

  /**
   * Stops rsyslogd without letting this process's event loop run meanwhile: when it returns, rsyslogd has
   * closed its connections (it is a zombie) but the outputs have not yet read the connections' end.
   */
  stopSynchronously(): Promise<unknown> {
    const proc = this.proc!;
    this.proc = undefined;
    const pid = proc.proc.pid!;
    proc.kill('SIGTERM');
    execFileSync('sh', ['-c', `for i in $(seq 1000); do grep -q '^State:.*Z' /proc/${pid}/status && exit 0; sleep 0.01; done; exit 1`]);
    return proc.exited;
  }

  lines(listener: Listener): Received[] {
    const file = path.join(this.dir, `${listener}.log`);
    if (!existsSync(file)) return [];
    // Only complete lines: rsyslogd may be writing the last one while it is read.
    const text = readFileSync(file, 'utf8');
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Received);
  }

  /** Connections to the TCP listener that the sender closed. */
  closedTcpSessions(): number {
    const file = path.join(this.dir, 'internal.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => /imptcp session \d+ closed by remote peer/.test(l)).length : 0;
  }

  /** Messages of one test run, in the order rsyslogd wrote them. */
  received(listener: Listener, run: string): Received[] {
    return this.lines(listener).filter((m) => m.raw.includes(`"run":"${run}"`));
  }

  async waitForCount(listener: Listener, run: string, count: number): Promise<Received[]> {
    await waitFor(() => this.received(listener, run).length >= count, { timeoutMs: 10_000, message: `${count} messages of ${run} on ${listener} (got ${this.received(listener, run).length})` });
    return this.received(listener, run);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

