// First start of an empty store: a default organization, a root API key for it and an installation
// key, so a new user can enroll a sensor right away. Secrets are returned once and stored hashed.
import { newId } from '../domain/ids.js';
import type { Store } from '../store/store.js';
import { newToken } from './secrets.js';

export interface BootstrapCredentials {
  url: string;
  oid: string;
  api_key: string;
  installation_key: string;
}

/** Creates the default organization when the store has none; returns its fresh secrets, or null. */
export async function bootstrapStore(store: Store, now: number): Promise<Omit<BootstrapCredentials, 'url'> | null> {
  if ((await store.listOrgs()).length > 0) return null;
  const oid = newId();
  const api = newToken();
  const inst = newToken();
  const created = await store.bootstrapFirstOrg(
    { oid, name: 'default', quota: null, created: now },
    { key_id: api.id, oid, name: 'bootstrap-admin', role: 'root', secret_hash: api.hash, created: now },
    { iid: inst.id, oid, desc: 'default installation key', tags: [], secret_hash: inst.hash, created: now },
  );
  // Another node of the cluster created the first organization meanwhile: its credentials are its own.
  return created ? { oid, api_key: api.token, installation_key: inst.token } : null;
}
