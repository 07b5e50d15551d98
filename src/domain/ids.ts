// Identifier helpers: UUIDs as used in routing, and their 32-hex form used in HCP_IDENT.
import { randomUUID } from 'node:crypto';
import { flattened } from './strings.js';

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A random UUID as one contiguous string (randomUUID() builds it from about a dozen pieces). */
export function newId(): string {
  return flattened(randomUUID());
}

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}

/** `HCP_ORG_ID`-style form: 32 lowercase hex digits, no dashes (decisions.md §1). */
export function toHex32(uuid: string | null | undefined): string {
  return (uuid ?? NIL_UUID).replace(/-/g, '').toLowerCase();
}
