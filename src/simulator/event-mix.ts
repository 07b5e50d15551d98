// Realistic endpoint telemetry for load simulation: the event types an EDR sensor sends most, in
// proportions and sizes like a busy workstation's (process starts, DNS, network, file activity).
// Payloads are generated once into a pool from a seeded PRNG, so generation costs the simulator
// nothing per event and two runs with the same seed send the same bytes.
import { createHash } from 'node:crypto';
import type { SensorEvent } from '../protocol/messages.js';

/** Deterministic PRNG (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
type PayloadMaker = (r: Rand) => Record<string, unknown>;

const EXECUTABLES = [
  'C:\\Windows\\System32\\svchost.exe', 'C:\\Windows\\System32\\cmd.exe', 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
  'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe', 'C:\\Windows\\explorer.exe', 'C:\\Windows\\System32\\conhost.exe',
  '/usr/bin/bash', '/usr/bin/python3', '/usr/sbin/sshd', '/usr/bin/curl', '/usr/lib/systemd/systemd-journald', '/usr/bin/node',
];
const DOMAINS = ['www.google.com', 'login.microsoftonline.com', 'api.github.com', 'update.googleapis.com', 'cdn.jsdelivr.net', 'time.windows.com', 'registry.npmjs.org', 'slack.com'];
const USERS = ['SYSTEM', 'alice', 'bob', 'root', 'svc-backup', 'NETWORK SERVICE'];
const DIRS = ['C:\\Users\\alice\\AppData\\Local\\Temp', 'C:\\ProgramData\\Microsoft', '/tmp', '/var/log', '/home/bob/.cache', 'C:\\Windows\\Prefetch'];

function pick<T>(r: Rand, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}
function hex(r: Rand, bytes: number): string {
  return createHash('sha256').update(String(r())).digest('hex').slice(0, bytes * 2);
}
function ip(r: Rand): string {
  return `${10 + Math.floor(r() * 200)}.${Math.floor(r() * 255)}.${Math.floor(r() * 255)}.${1 + Math.floor(r() * 253)}`;
}
function pid(r: Rand): number {
  return 100 + Math.floor(r() * 60000);
}
function commandLine(r: Rand, exe: string): string {
  const args = ['--type=renderer', '-NoProfile -ExecutionPolicy Bypass', '-k netsvcs -p', '/c echo hello', '--field-trial-handle=1736', '-u -m http.server', '-o /dev/null https://example.com'];
  let line = `"${exe}"`;
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) line += ` ${pick(r, args)}`;
  return line;
}

/** [event type, weight, payload maker]: weights are percentages of a typical endpoint's stream. */
const MIX: ReadonlyArray<readonly [string, number, PayloadMaker]> = [
  ['NEW_PROCESS', 14, (r) => {
    const exe = pick(r, EXECUTABLES);
    return {
      FILE_PATH: exe, COMMAND_LINE: commandLine(r, exe), PROCESS_ID: pid(r), PARENT_PROCESS_ID: pid(r), USER_NAME: pick(r, USERS),
      THREADS: 1 + Math.floor(r() * 40), MEMORY_USAGE: Math.floor(r() * 5e8), HASH: hex(r, 32), BASE_ADDRESS: Math.floor(r() * 1e12),
      PARENT: { FILE_PATH: pick(r, EXECUTABLES), PROCESS_ID: pid(r), COMMAND_LINE: commandLine(r, pick(r, EXECUTABLES)) },
    };
  }],
  ['TERMINATE_PROCESS', 10, (r) => ({ PROCESS_ID: pid(r), PARENT_PROCESS_ID: pid(r), FILE_PATH: pick(r, EXECUTABLES) })],
  ['DNS_REQUEST', 22, (r) => ({ DOMAIN_NAME: pick(r, DOMAINS), DNS_TYPE: pick(r, [1, 28, 5]), IP_ADDRESS: ip(r), MESSAGE_ID: Math.floor(r() * 65535), PROCESS_ID: pid(r) })],
  ['NETWORK_CONNECTIONS', 12, (r) => ({
    PROCESS_ID: pid(r), FILE_PATH: pick(r, EXECUTABLES),
    NETWORK_ACTIVITY: Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({
      SOURCE: { IP_ADDRESS: ip(r), PORT: 1024 + Math.floor(r() * 60000) }, DESTINATION: { IP_ADDRESS: ip(r), PORT: pick(r, [443, 80, 53, 22, 8443]) },
      IS_OUTGOING: 1, PROTOCOL: pick(r, ['tcp4', 'udp4']), TIMESTAMP: 1_700_000_000_000 + Math.floor(r() * 1e10),
    })),
  })],
  ['NEW_TCP4_CONNECTION', 10, (r) => ({ PROCESS_ID: pid(r), SOURCE: { IP_ADDRESS: ip(r), PORT: 1024 + Math.floor(r() * 60000) }, DESTINATION: { IP_ADDRESS: ip(r), PORT: 443 }, STATE: 5 })],
  ['FILE_CREATE', 8, (r) => ({ FILE_PATH: `${pick(r, DIRS)}${r() < 0.5 ? '\\' : '/'}${hex(r, 6)}.tmp`, PROCESS_ID: pid(r) })],
  ['FILE_MODIFIED', 8, (r) => ({ FILE_PATH: `${pick(r, DIRS)}/${hex(r, 5)}.log`, PROCESS_ID: pid(r) })],
  ['FILE_DELETE', 5, (r) => ({ FILE_PATH: `${pick(r, DIRS)}/${hex(r, 6)}.tmp`, PROCESS_ID: pid(r) })],
  ['CODE_IDENTITY', 5, (r) => ({ FILE_PATH: pick(r, EXECUTABLES), HASH: hex(r, 32), HASH_MD5: hex(r, 16), HASH_SHA1: hex(r, 20), FILE_INFO: '10.0.19041.1', SIGNATURE: { CERT_ISSUER: 'C=US, O=Microsoft Corporation', CERT_SUBJECT: 'C=US, O=Microsoft Windows', FILE_IS_SIGNED: 1, FILE_CERT_IS_VERIFIED_LOCAL: 1 }, ORIGINAL_FILE_NAME: 'svchost.exe' })],
  ['MODULE_LOAD', 6, (r) => ({ FILE_PATH: `C:\\Windows\\System32\\${hex(r, 4)}.dll`, PROCESS_ID: pid(r), BASE_ADDRESS: Math.floor(r() * 1e12), MEMORY_SIZE: Math.floor(r() * 1e7), HASH: hex(r, 32) })],
];

const TOTAL_WEIGHT = MIX.reduce((s, [, w]) => s + w, 0);

/** A pool of pre-built events; `take()` hands them out round-robin with a fresh event_time. */
export class EventMix {
  private readonly pool: Array<{ event_type: string; event: Record<string, unknown>; this: string }> = [];
  private next = 0;
  /** Mean JSON size of one event in the pool, bytes. */
  readonly meanEventBytes: number;

  constructor(seed = 1, poolSize = 2048) {
    const r = seededRandom(seed);
    let bytes = 0;
    for (let i = 0; i < poolSize; i++) {
      let x = r() * TOTAL_WEIGHT;
      let chosen = MIX[0]!;
      for (const entry of MIX) {
        x -= entry[1];
        if (x <= 0) {
          chosen = entry;
          break;
        }
      }
      const e = { event_type: chosen[0], event: chosen[2](r), this: hex(r, 16) };
      bytes += JSON.stringify(e).length + 30;
      this.pool.push(e);
    }
    this.meanEventBytes = Math.round(bytes / poolSize);
  }

  take(now: number): SensorEvent {
    const e = this.pool[this.next]!;
    this.next = (this.next + 1) % this.pool.length;
    return { event_type: e.event_type, event_time: now, event: e.event, this: e.this };
  }

  batch(n: number, now: number): SensorEvent[] {
    const out = new Array<SensorEvent>(n);
    for (let i = 0; i < n; i++) out[i] = this.take(now);
    return out;
  }

  /** Event types and their share of the mix, for reports. */
  static shares(): Record<string, number> {
    return Object.fromEntries(MIX.map(([t, w]) => [t, Math.round((w / TOTAL_WEIGHT) * 1000) / 1000]));
  }
}
