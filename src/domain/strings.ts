// Strings kept for a long time (a session's lifetime) are kept as contiguous copies of their own, and
// strings built per event are made contiguous as soon as they are built.
//
// V8 keeps `a + b + ...` as a tree of pieces (randomUUID() returns one of about a dozen), and a string
// decoded from a frame may be a slice that holds the whole frame alive. A sensor session keeps a few such
// strings for hours: as trees or slices they cost it several hundred bytes more, and every use walks them.

/** A contiguous copy of `s` that shares memory with no other string. */
export function detachedString(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

let _flattenSink = 0;

/**
 * `s` itself, made contiguous: reading a character of a string built by `+` makes V8 copy its pieces into
 * one string (the concatenation then points to it) and let the pieces go. An event's envelope waits for
 * its commit long enough to reach the old generation; as a tree it takes its pieces there (about three
 * times its size), and the hand-over to the append thread would copy it flat there once more.
 */
export function flattened(s: string): string {
  // Kept in a sink so that the compiler cannot drop the read.
  _flattenSink ^= s.charCodeAt(0);
  return s;
}
