// The sensor's identity, received once at enrollment (protocol.md §3): <state-dir>/identity.json, readable
// by its user only, replaced atomically so that a crash never leaves half a file behind.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isUuid } from '../domain/ids.js';

export interface SensorIdentity {
  sid: string;
  secret: string;
  oid: string;
  iid: string;
  /** The cloud URL the sensor enrolled with, so that later starts need no --url. */
  url?: string;
}

export class IdentityFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'IdentityFileError';
  }
}

export const IDENTITY_FILE_NAME = 'identity.json';
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** POSIX permissions mean nothing on Windows; the checks are skipped there. */
const POSIX = process.platform !== 'win32';

export class IdentityFile {
  readonly path: string;

  constructor(readonly stateDir: string) {
    this.path = path.join(stateDir, IDENTITY_FILE_NAME);
  }

  /** The stored identity, or undefined when there is none. Throws IdentityFileError when it is unreadable. */
  async load(): Promise<SensorIdentity | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new IdentityFileError(this.path, `cannot read the sensor identity ${this.path}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw this.corrupt(`not JSON (${(err as Error).message})`);
    }
    const identity = this.validate(parsed);
    if (POSIX) {
      // Someone loosened the permissions: the secret must stay private, so tighten them again.
      const st = await fs.stat(this.path);
      if ((st.mode & 0o077) !== 0) await fs.chmod(this.path, FILE_MODE);
    }
    return identity;
  }

  /** Writes the identity durably: a private temporary file, fsynced, renamed over the old one. */
  async save(identity: SensorIdentity): Promise<void> {
    this.validate(identity);
    await fs.mkdir(this.stateDir, { recursive: true, mode: DIR_MODE });
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const body = JSON.stringify(identity, null, 2) + '\n';
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(tmp, 'wx', FILE_MODE);
      // The mode given to open() is reduced by the umask; state it explicitly.
      if (POSIX) await handle.chmod(FILE_MODE);
      await handle.writeFile(body, 'utf8');
      await handle.sync();
      await handle.close();
      handle = undefined;
      await fs.rename(tmp, this.path);
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw new IdentityFileError(this.path, `cannot write the sensor identity ${this.path}: ${(err as Error).message}`);
    }
    await this.syncDir();
    if (POSIX) {
      const mode = (await fs.stat(this.path)).mode & 0o777;
      if (mode !== FILE_MODE) throw new IdentityFileError(this.path, `${this.path} has mode ${mode.toString(8)} instead of 600`);
    }
  }

  /** Forgets the identity (re-enrollment): the next hello uses the installation key. */
  async remove(): Promise<void> {
    await fs.rm(this.path, { force: true });
    await this.syncDir();
  }

  private async syncDir(): Promise<void> {
    if (!POSIX) return;
    // Makes the rename itself durable; best effort, some file systems refuse to fsync a directory.
    const dir = await fs.open(this.stateDir, 'r').catch(() => undefined);
    if (!dir) return;
    await dir.sync().catch(() => undefined);
    await dir.close();
  }

  private validate(value: unknown): SensorIdentity {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.corrupt('not a JSON object');
    const v = value as Record<string, unknown>;
    if (!isUuid(v.sid)) throw this.corrupt('"sid" is not a UUID');
    for (const field of ['oid', 'iid'] as const) {
      if (typeof v[field] !== 'string' || v[field].length === 0) throw this.corrupt(`"${field}" is missing`);
    }
    if (typeof v.secret !== 'string' || v.secret.length === 0) throw this.corrupt('"secret" is missing');
    if (v.url !== undefined && typeof v.url !== 'string') throw this.corrupt('"url" is not a string');
    const identity: SensorIdentity = { sid: v.sid as string, secret: v.secret, oid: v.oid as string, iid: v.iid as string };
    if (typeof v.url === 'string') identity.url = v.url;
    return identity;
  }

  private corrupt(detail: string): IdentityFileError {
    return new IdentityFileError(
      this.path,
      `the sensor identity ${this.path} is corrupt: ${detail}. Restore it from a backup to keep this sensor's id, or delete it and start with --key to enroll this host as a new sensor.`,
    );
  }
}
