// What the reference sensor tells the cloud about its host in hello (protocol.md §3): names, platform and
// architecture codes, addresses, and a fingerprint that stays the same across restarts of the same host.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { ARCHITECTURE, PLATFORM } from '../domain/platform.js';
import type { HostInfo } from '../protocol/messages.js';
import { PICKET_VERSION } from '../version.js';

export const SENSOR_VERSION = `picket-sensor/${PICKET_VERSION}`;

/** What host-info reads from the machine; injectable for tests. */
export interface HostProbe {
  hostname: () => string;
  platform: () => NodeJS.Platform;
  arch: () => string;
  networkInterfaces: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** Contents of a file, or undefined when it does not exist or cannot be read. */
  readFile: (file: string) => string | undefined;
}

export const SYSTEM_PROBE: HostProbe = {
  hostname: () => os.hostname(),
  platform: () => os.platform(),
  arch: () => os.arch(),
  networkInterfaces: () => os.networkInterfaces(),
  readFile: (file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  },
};

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];
/** Interfaces that come and go with containers and VPNs; their MACs would make the fingerprint unstable. */
const VIRTUAL_INTERFACE = /^(lo|veth|docker|br-|virbr|vmnet|vboxnet|tun|tap|wg|utun|llw|awdl|bridge|cni|flannel|cali|kube|zt)/i;
const NO_MAC = '00:00:00:00:00:00';

export interface HostInfoOptions {
  /** Overrides the system host name (`--hostname`). */
  hostname?: string;
  isSegregated?: boolean;
  probe?: HostProbe;
}

export function collectHostInfo(options: HostInfoOptions = {}): HostInfo {
  const probe = options.probe ?? SYSTEM_PROBE;
  const hostname = (options.hostname ?? probe.hostname()).slice(0, 255) || 'localhost';
  const platform = probe.platform();
  const primary = primaryInterface(probe);
  return {
    hostname,
    plat: platformCode(platform),
    arch: architectureCode(probe.arch(), platform === 'linux' && isMusl(probe)),
    int_ip: primary?.address ?? '127.0.0.1',
    // "" when the host has no real MAC (the cloud's CONNECTED.MAC_ADDRESS accepts that).
    mac: primary && primary.mac !== NO_MAC ? formatMac(primary.mac) : '',
    fingerprint: hostFingerprint(hostname, probe),
    version: SENSOR_VERSION,
    kernel: false,
    is_segregated: options.isSegregated ?? false,
  };
}

/** Platform code (domain/platform.ts) of a Node platform; other Unix systems report as Linux. */
export function platformCode(platform: NodeJS.Platform | string): number {
  switch (platform) {
    case 'win32': return PLATFORM.windows;
    case 'darwin': return PLATFORM.macos;
    case 'android': return PLATFORM.android;
    default: return PLATFORM.linux;
  }
}

/** Architecture code of a Node architecture; 0 when the table has none. */
export function architectureCode(arch: string, musl = false): number {
  switch (arch) {
    case 'x64': return musl ? ARCHITECTURE.alpine64 : ARCHITECTURE.x64;
    case 'ia32': return ARCHITECTURE.x86;
    case 'arm': return ARCHITECTURE.arm;
    case 'arm64': return ARCHITECTURE.arm64;
    default: return 0;
  }
}

/** `aa:bb:cc:dd:ee:ff` → `AA-BB-CC-DD-EE-FF`, the form protocol.md uses. */
export function formatMac(mac: string): string {
  return mac.replace(/:/g, '-').toUpperCase();
}

/** The first non-internal IPv4 interface: the host's LAN address and the MAC reported in hello. */
function primaryInterface(probe: HostProbe): os.NetworkInterfaceInfo | undefined {
  let fallback: os.NetworkInterfaceInfo | undefined;
  for (const [name, infos] of Object.entries(probe.networkInterfaces())) {
    for (const info of infos ?? []) {
      if (info.internal || info.family !== 'IPv4') continue;
      if (!VIRTUAL_INTERFACE.test(name)) return info;
      fallback ??= info;
    }
  }
  return fallback;
}

function machineId(probe: HostProbe): string {
  for (const file of MACHINE_ID_FILES) {
    const id = probe.readFile(file)?.trim();
    if (id) return id;
  }
  return '';
}

/**
 * sha-256 of the machine id, the MACs of the physical-looking interfaces and the host name. Only the
 * hash leaves the host. The same host gives the same value on every start; a cloned disk on another
 * machine differs in its MACs (and usually its machine id once regenerated).
 */
export function hostFingerprint(hostname: string, probe: HostProbe = SYSTEM_PROBE): string {
  const macs = new Set<string>();
  for (const [name, infos] of Object.entries(probe.networkInterfaces())) {
    if (VIRTUAL_INTERFACE.test(name)) continue;
    for (const info of infos ?? []) {
      if (!info.internal && info.mac !== NO_MAC) macs.add(formatMac(info.mac));
    }
  }
  return createHash('sha256')
    .update(['picket-host-v1', machineId(probe), [...macs].sort().join(','), hostname].join('\n'))
    .digest('hex');
}

function isMusl(probe: HostProbe): boolean {
  if (probe === SYSTEM_PROBE) return existsSync('/etc/alpine-release') || existsSync('/lib/ld-musl-x86_64.so.1');
  return probe.readFile('/etc/alpine-release') !== undefined;
}
