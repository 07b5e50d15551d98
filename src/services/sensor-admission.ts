// Who is knocking: enrolls a new sensor presenting an installation key, or authenticates an existing
// identity. Whether it may then hold a session (deleted, clone, quota) is admission-policy.ts's call.
import { newId } from '../domain/ids.js';
import type { SensorHost, SensorRecord } from '../domain/records.js';
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

export interface Admission {
  sensor: SensorRecord;
  /** Present when this hello enrolled the sensor: the secret to hand over once. */
  enrolledSecret: string | undefined;
}

export function hostFromHello(hello: HelloMessage, extIp: string): SensorHost & { isolated: boolean } {
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

export async function authenticateSensor(store: Store, hello: HelloMessage, extIp: string, now: number): Promise<Admission> {
  const host = hostFromHello(hello, extIp);
  const auth = hello.auth;
  if ('installation_key' in auth) {
    const token = parseToken(auth.installation_key);
    if (!token) throw new AdmissionError(CloseCode.unauthorized, 'invalid installation key');
    const key = await store.getInstallationKey(token.id);
    if (!key || !verifySecret(token.secret, key.secret_hash)) throw new AdmissionError(CloseCode.unauthorized, 'invalid installation key');
    const secret = newSecret();
    const sid = newId();
    const { isolated: _isolated, ...sensorHost } = host;
    await store.createSensor({ ...sensorHost, sid, oid: key.oid, iid: key.iid, secret_hash: hashSecret(secret), tags: key.tags, enroll: now });
    const sensor = await store.getSensor(sid);
    if (!sensor) throw new Error(`sensor ${sid} vanished right after enrollment`);
    return { sensor, enrolledSecret: secret };
  }
  const sensor = await store.getSensor(auth.sid.toLowerCase());
  if (!sensor) {
    // Never enrolled here, or forgotten 30 days after its deletion: the way back is a new enrollment.
    throw new AdmissionError(CloseCode.reenroll, 'unknown sensor id (never enrolled here, or forgotten after its deletion): enroll again with an installation key');
  }
  if (!verifySecret(auth.secret, sensor.secret_hash)) throw new AdmissionError(CloseCode.unauthorized, 'wrong sensor secret');
  return { sensor, enrolledSecret: undefined };
}
