// Who is knocking: enrolls a new sensor presenting an installation key, or authenticates an existing
// identity. Whether it may then hold a session (deleted, clone, quota) is admission-policy.ts's call.
import { v5 as uuidV5 } from 'uuid';
import { newId } from '../domain/ids.js';
import type { InstallationKeyRecord, SensorHost, SensorRecord } from '../domain/records.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { HelloMessage } from '../protocol/messages.js';
import type { Store } from '../store/store.js';
import { hashSecret, newSecret, parseToken, verifySecret } from './secrets.js';

export class AdmissionError extends Error {
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * An adapter (USP, docs/usp.md) has no identity of its own: it presents the installation key and a seed key
 * each time, and its sid is derived from them, so the same seed key always lands on the same sensor.
 */
export interface AdapterCredentials {
  adapter: { oid: string; installation_key: string; sensor_seed_key: string };
}

export type SensorCredentials = HelloMessage['auth'] | AdapterCredentials;

export interface Admission {
  sensor: SensorRecord;
  /** True when this hello created the sensor (its `enrollment` is due). */
  enrolled: boolean;
  /** Present when this hello enrolled a sensor that must keep an identity: the secret to hand over once. */
  enrolledSecret: string | undefined;
}

/** The sid of an adapter: UUIDv5 of its seed key in the namespace of its organization (docs/usp.md §2). */
export function adapterSid(oid: string, seedKey: string): string {
  return uuidV5(seedKey, oid.toLowerCase());
}

export function hostFromHello(hello: { host: HelloMessage['host'] }, extIp: string): SensorHost & { isolated: boolean } {
  const h = hello.host;
  return {
    hostname: h.hostname,
    plat: h.plat,
    arch: h.arch,
    int_ip: h.int_ip,
    ext_ip: extIp,
    mac: h.mac,
    fingerprint: h.fingerprint,
    sensor_version: h.version,
    kernel: h.kernel,
    isolated: h.is_segregated,
  };
}

async function verifyInstallationKey(store: Store, installationKey: string): Promise<InstallationKeyRecord> {
  const token = parseToken(installationKey);
  if (!token) throw new AdmissionError(CloseCode.unauthorized, 'invalid installation key');
  const key = await store.getInstallationKey(token.id);
  if (!key || !verifySecret(token.secret, key.secret_hash)) throw new AdmissionError(CloseCode.unauthorized, 'invalid installation key');
  return key;
}

/** An adapter's sensor: found by its derived sid, or created (enrolled) on its first connection. */
async function authenticateAdapter(store: Store, auth: AdapterCredentials['adapter'], host: SensorHost, now: number): Promise<Admission> {
  const key = await verifyInstallationKey(store, auth.installation_key);
  if (key.oid !== auth.oid.toLowerCase()) throw new AdmissionError(CloseCode.unauthorized, 'the installation key does not belong to this organization');
  const sid = adapterSid(key.oid, auth.sensor_seed_key);
  const existing = await store.getSensor(sid);
  if (existing) return { sensor: existing, enrolled: false, enrolledSecret: undefined };
  try {
    // Adapters authenticate with the key every time; the secret exists only because every sensor has one.
    await store.createSensor({ ...host, sid, oid: key.oid, iid: key.iid, secret_hash: hashSecret(newSecret()), tags: key.tags, enroll: now });
  } catch (err) {
    // Two connections with the same seed key racing to enroll: the other one won.
    const raced = await store.getSensor(sid);
    if (raced) return { sensor: raced, enrolled: false, enrolledSecret: undefined };
    throw err;
  }
  const sensor = await store.getSensor(sid);
  if (!sensor) throw new Error(`adapter ${sid} vanished right after enrollment`);
  return { sensor, enrolled: true, enrolledSecret: undefined };
}

export async function authenticateSensor(store: Store, hello: { auth: SensorCredentials; host: HelloMessage['host'] }, extIp: string, now: number): Promise<Admission> {
  const host = hostFromHello(hello, extIp);
  const auth = hello.auth;
  if ('adapter' in auth) {
    const { isolated: _isolated, ...sensorHost } = host;
    return authenticateAdapter(store, auth.adapter, sensorHost, now);
  }
  if ('installation_key' in auth) {
    const key = await verifyInstallationKey(store, auth.installation_key);
    const secret = newSecret();
    const sid = newId();
    const { isolated: _isolated, ...sensorHost } = host;
    await store.createSensor({ ...sensorHost, sid, oid: key.oid, iid: key.iid, secret_hash: hashSecret(secret), tags: key.tags, enroll: now });
    const sensor = await store.getSensor(sid);
    if (!sensor) throw new Error(`sensor ${sid} vanished right after enrollment`);
    return { sensor, enrolled: true, enrolledSecret: secret };
  }
  const sensor = await store.getSensor(auth.sid.toLowerCase());
  if (!sensor) {
    // Never enrolled here, or forgotten 30 days after its deletion: the way back is a new enrollment.
    throw new AdmissionError(CloseCode.reenroll, 'unknown sensor id (never enrolled here, or forgotten after its deletion): enroll again with an installation key');
  }
  if (!verifySecret(auth.secret, sensor.secret_hash)) throw new AdmissionError(CloseCode.unauthorized, 'wrong sensor secret');
  return { sensor, enrolled: false, enrolledSecret: undefined };
}
