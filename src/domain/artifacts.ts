// Artifacts (docs/artifacts.md): files uploaded through POST /ingest, kept content-addressed on disk,
// their ingestion keys, the parts of a multi-part upload, and exports that package several of them.

/** A key an organization's uploaders authenticate with (HTTP Basic: oid : "<key_id>.<secret>"). */
export interface IngestionKeyRecord {
  key_id: string;
  oid: string;
  name: string;
  /** SHA-256 of the secret (services/secrets.ts); the secret itself is shown once, at creation. */
  secret_hash: string;
  created: number;
}

export interface ArtifactRecord {
  log_id: string;
  oid: string;
  /** lc-payload-id: the upload's idempotency key (unique per organization). */
  payload_id: string;
  /** lc-hint, routing.log_type of its events (e.g. "pcap"). */
  log_type: string;
  /** lc-source: the sid of the uploading sensor or a source name. */
  source: string;
  /** The original path, decoded from lc-path ("" when not given). */
  original_path: string;
  size: number;
  /** Hex digests of the content; sha256 names the file on disk. */
  sha256: string;
  md5: string;
  /** Unix ms. */
  created: number;
  /** Unix ms after which the retention janitor deletes it. */
  expires: number;
}

/** One received part of a multi-part upload, waiting for its `done`. */
export interface ArtifactPartRecord {
  oid: string;
  payload_id: string;
  /** The lc-part number; the `done` part is stored after the highest number. */
  part: number;
  size: number;
  received: number;
}

export type ArtifactExportState = 'pending' | 'ready' | 'failed';

export interface ArtifactExportRecord {
  export_id: string;
  oid: string;
  log_ids: string[];
  state: ArtifactExportState;
  /** Size of the package in bytes (0 until ready). */
  size: number;
  error: string | null;
  created: number;
  completed: number | null;
}

export interface ArtifactListQuery {
  oid: string;
  /** Inclusive bounds on created, Unix ms. */
  start: number;
  end: number;
  limit: number;
  cursor?: string;
  /** Only artifacts of this source (e.g. a sensor's sid). */
  source?: string;
}

export interface ArtifactPage {
  artifacts: ArtifactRecord[];
  nextCursor: string | null;
}
