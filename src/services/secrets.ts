// Credentials: API keys, installation keys and sensor secrets are "<id>.<secret>" tokens (or a bare secret
// for sensors). Only a SHA-256 of the secret is stored. The secrets are 192 random bits, so a fast hash
// is enough (no password stretching needed) and keeps enrollment storms cheap.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isUuid, newId } from '../domain/ids.js';

export function newSecret(): string {
  return randomBytes(24).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function verifySecret(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A new "<uuid>.<secret>" credential: the id to store in clear, the token to show once, the hash to keep. */
export function newToken(): { id: string; token: string; hash: string } {
  const id = newId();
  const secret = newSecret();
  return { id, token: `${id}.${secret}`, hash: hashSecret(secret) };
}

/** Splits "<uuid>.<secret>"; null when the shape is wrong. */
export function parseToken(token: string): { id: string; secret: string } | null {
  const dot = token.indexOf('.');
  if (dot !== 36) return null;
  const id = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!isUuid(id) || secret.length < 16 || secret.length > 128) return null;
  return { id: id.toLowerCase(), secret };
}
