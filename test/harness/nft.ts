// What this machine offers for nftables network isolation, found out independently of the sensor's code,
// so tests can say what its self-test must report here.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** Linux, root, and an `nft` that can read the ruleset: what isolating needs. */
export function canIsolateHere(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  return spawnSync('nft', ['list', 'tables'], { stdio: 'ignore' }).status === 0;
}

/** PATH without the directories holding an `nft` executable (a host without nftables). */
export function pathWithoutNft(pathValue = process.env.PATH ?? ''): string {
  return pathValue
    .split(path.delimiter)
    .filter((dir) => {
      try {
        accessSync(path.join(dir, 'nft'), constants.X_OK);
        return false;
      } catch {
        return true;
      }
    })
    .join(path.delimiter);
}
