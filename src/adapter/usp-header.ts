// Where and as whom an adapter connects: the /usp URL of a cloud and the JSON connection header
// (docs/usp.md §2).

export const USP_PATH = '/usp';

/** How the cloud reads events from payloads (docs/usp.md §5). */
export interface UspMapping {
  parsing_re?: string;
  event_type_path?: string;
  event_time_path?: string;
  sensor_hostname_path?: string;
  investigation_id_path?: string;
}

export interface AdapterIdentity {
  oid: string;
  /** Installation key `<iid>.<secret>`. */
  installationKey: string;
  hostname: string;
  /** With the oid it gives the adapter's sid. */
  seedKey: string;
  /** `text`, `json`, … or a numeric platform code. */
  platform: string | number;
  mapping?: UspMapping;
}

export interface UspConnectionHeader {
  version: 2;
  oid: string;
  iid: string;
  host_name: string;
  platform: string | number;
  architecture: 'usp_adapter';
  sensor_seed_key: string;
  instance_id: string;
  is_compressed: boolean;
  data_format: 'msgpack';
  mapping?: UspMapping;
}

export function connectionHeader(identity: AdapterIdentity, instanceId: string, compressed: boolean): UspConnectionHeader {
  const mapping = identity.mapping && Object.keys(identity.mapping).length > 0 ? identity.mapping : undefined;
  return {
    version: 2,
    oid: identity.oid,
    iid: identity.installationKey,
    host_name: identity.hostname,
    platform: identity.platform,
    architecture: 'usp_adapter',
    sensor_seed_key: identity.seedKey,
    instance_id: instanceId,
    is_compressed: compressed,
    data_format: 'msgpack',
    ...(mapping ? { mapping } : {}),
  };
}

/** The USP endpoint of a cloud given as http(s)://host:port or ws(s)://host:port, with or without /usp. */
export function uspUrl(cloudUrl: string): string {
  let u: URL;
  try {
    u = new URL(cloudUrl);
  } catch {
    throw new Error(`invalid cloud URL "${cloudUrl}": expected e.g. http://127.0.0.1:4830 or wss://picket.example.com/usp`);
  }
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[u.protocol];
  if (!scheme) throw new Error(`invalid cloud URL "${cloudUrl}": the scheme must be http, https, ws or wss`);
  const base = u.pathname.replace(/\/+$/, '');
  return `${scheme}//${u.host}${base.endsWith(USP_PATH) ? base : `${base}${USP_PATH}`}${u.search}`;
}
