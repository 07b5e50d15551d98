// Platform and architecture codes (platform-reference.md §1.3): the numeric values sensors and events carry.

export const PLATFORM = {
  windows: 0x10000000,
  linux: 0x20000000,
  macos: 0x30000000,
  ios: 0x40000000,
  android: 0x50000000,
  chrome: 0x60000000,
  vpn: 0x70000000,
  text: 0x80000000,
  json: 0x90000000,
  gcp: 0xa0000000,
  aws: 0xb0000000,
  carbon_black: 0xc0000000,
  '1password': 0xd0000000,
  office365: 0xe0000000,
  sophos: 0xf0000000,
  crowdstrike: 0x01000000,
  xml: 0x02000000,
  wel: 0x03000000,
  msdefender: 0x04000000,
  duo: 0x05000000,
  okta: 0x06000000,
  sentinel_one: 0x07000000,
  github: 0x08000000,
  slack: 0x09000000,
  cef: 0x0a000000,
  lc_event: 0x0b000000,
  azure_ad: 0x0c000000,
  azure_monitor: 0x0d000000,
  canary_token: 0x0e000000,
  guard_duty: 0x0f000000,
} as const;

export type PlatformName = keyof typeof PLATFORM;

export const ARCHITECTURE = {
  x86: 1,
  x64: 2,
  arm: 3,
  arm64: 4,
  alpine64: 5,
  chromium: 6,
  wireguard: 7,
  arml: 8,
  usp_adapter: 9,
} as const;

export type ArchitectureName = keyof typeof ARCHITECTURE;

const platformNames = new Map<number, string>(Object.entries(PLATFORM).map(([k, v]) => [v, k]));
const archNames = new Map<number, string>(Object.entries(ARCHITECTURE).map(([k, v]) => [v, k]));

/** Name of a platform code (full 32-bit value; never masked, see platform-reference.md §1.3). */
export function platformName(code: number): string {
  return platformNames.get(code) ?? `0x${code.toString(16).padStart(8, '0')}`;
}

export function architectureName(code: number): string {
  return archNames.get(code) ?? String(code);
}

/** Accepts a platform name or a numeric code (decimal or 0x-hex); returns the code or undefined. */
export function parsePlatform(value: string): number | undefined {
  if (value in PLATFORM) return PLATFORM[value as PlatformName];
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : undefined;
}
