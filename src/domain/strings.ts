// Strings kept for a long time (a session's lifetime) are kept as contiguous copies of their own.
//
// V8 keeps `a + b + ...` as a tree of pieces (randomUUID() returns one of about a dozen), and a string
// decoded from a frame may be a slice that holds the whole frame alive. A sensor session keeps a few such
// strings for hours: as trees or slices they cost it several hundred bytes more, and every use walks them.

/** A contiguous copy of `s` that shares memory with no other string. */
export function detachedString(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}
