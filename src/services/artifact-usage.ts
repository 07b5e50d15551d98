// What billing needs from artifact storage: how many bytes an organization keeps stored right now
// (billing_record cat "artifact", k "bytes_stored", sampled when a period closes). ArtifactService implements it.

export interface ArtifactUsage {
  bytesStored(oid: string): Promise<number>;
}
