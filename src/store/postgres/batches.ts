// Turning a batch of writes into few statements. Multi-row writes pass one array per column and UNNEST
// them (a fixed number of parameters whatever the batch size, well under PostgreSQL's 65,535 bind
// parameters). An upsert or UPDATE ... FROM must not touch the same row twice in one statement, while the
// store's contract applies a batch in order: rounds() splits a batch into statements in which each key
// appears at most once, keeping the order of each key's writes (nearly always a single round).

/** Splits `items` into rounds: the n-th write of each key goes into round n. */
export function rounds<T>(items: ReadonlyArray<T>, key: (item: T) => string): T[][] {
  const out: T[][] = [];
  const seen = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    (out[n] ??= []).push(item);
  }
  return out;
}

/** Consecutive slices of at most `size` items. */
export function chunks<T>(items: ReadonlyArray<T>, size: number): Array<ReadonlyArray<T>> {
  if (items.length <= size) return [items];
  const out: Array<ReadonlyArray<T>> = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A page size: a positive integer. */
export function pageSize(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  return limit;
}
