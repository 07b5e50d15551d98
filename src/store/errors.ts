// Errors every Store backend throws for the same situations, so callers (the API maps them to HTTP
// statuses) never look at backend-specific error codes.

/** An insert would duplicate a unique identifier (an existing oid, key_id, iid, sid...). */
export class StoreConflictError extends Error {
  readonly code = 'CONFLICT' as const;
  override readonly name = 'StoreConflictError';
}

/**
 * The record a write names does not exist: updating a missing org or sensor, or inserting a record that
 * references a missing org or sensor.
 */
export class StoreNotFoundError extends Error {
  readonly code = 'NOT_FOUND' as const;
  override readonly name = 'StoreNotFoundError';
}

/** A paging cursor that this store did not issue for this kind of query (or a mangled one). */
export class InvalidCursorError extends Error {
  readonly code = 'INVALID_CURSOR' as const;
  override readonly name = 'InvalidCursorError';
}
