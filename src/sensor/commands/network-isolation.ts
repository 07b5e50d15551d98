// Real network isolation on Linux with nftables (decisions.md §3 "Isolation"): one table of our own,
// `inet picket_isolation`, whose chains drop everything except loopback and the cloud endpoint, so the
// sensor stays connected and online while the host is cut off. Removing the table lifts it. The rules
// live in the kernel, so they survive a sensor restart; the sensor reports them in CONNECTED.IS_SEGREGATED.
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { ERROR } from './error-codes.js';

export const ISOLATION_TABLE = 'picket_isolation';

export interface IsolationOutcome {
  error: number;
  message?: string;
}

/** Whether isolation could be done here now, and why not (for selftest: never a pass it did not check). */
export interface IsolationReadiness {
  ready: boolean;
  detail: string;
}

export interface NetworkIsolation {
  /** Cuts the host off, except loopback and the cloud endpoint. */
  isolate(cloud: { host: string; port: number }): Promise<IsolationOutcome>;
  rejoin(): Promise<IsolationOutcome>;
  /** Whether our rules are in place now. */
  isIsolated(): Promise<boolean>;
  /** Checks what isolating needs, without changing anything. A backend without it is reported not ready. */
  readiness?(): Promise<IsolationReadiness>;
}

interface RunResult {
  code: number;
  stderr: string;
  missing: boolean;
}

function runNft(args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile('nft', args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && e.code === 'ENOENT') return resolve({ code: 127, stderr: 'nft not found', missing: true });
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stderr: String(stderr).trim(), missing: false });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The ruleset for the cloud's addresses: everything else is dropped, both ways. */
export function isolationRuleset(addresses: ReadonlyArray<string>, port: number): string {
  const allowIn = addresses.map((a) => `    ${net.isIPv6(a) ? 'ip6' : 'ip'} saddr ${a} tcp sport ${port} accept`).join('\n');
  const allowOut = addresses.map((a) => `    ${net.isIPv6(a) ? 'ip6' : 'ip'} daddr ${a} tcp dport ${port} accept`).join('\n');
  return [
    `table inet ${ISOLATION_TABLE} {`,
    '  chain input {',
    '    type filter hook input priority -10; policy drop;',
    '    iif "lo" accept',
    allowIn,
    '  }',
    '  chain output {',
    '    type filter hook output priority -10; policy drop;',
    '    oif "lo" accept',
    allowOut,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority -10; policy drop;',
    '  }',
    '}',
    '',
  ].join('\n');
}

export class NftIsolation implements NetworkIsolation {
  async isolate(cloud: { host: string; port: number }): Promise<IsolationOutcome> {
    const unsupported = this.unsupported();
    if (unsupported) return unsupported;
    let addresses: string[];
    try {
      addresses = net.isIP(cloud.host) ? [cloud.host] : (await lookup(cloud.host, { all: true })).map((a) => a.address);
    } catch (err) {
      return { error: ERROR.INVALID_PARAMETER, message: `cannot resolve the cloud host ${cloud.host}: ${(err as Error).message}` };
    }
    // Replace any previous version of our table in one transaction: flush-and-add is atomic in nft -f.
    const script = `table inet ${ISOLATION_TABLE}\ndelete table inet ${ISOLATION_TABLE}\n${isolationRuleset(addresses, cloud.port)}`;
    const r = await runNft(['-f', '-'], script);
    if (r.missing) return { error: ERROR.NOT_SUPPORTED, message: 'nft (nftables) is not installed: network isolation is not available' };
    if (r.code !== 0) return { error: ERROR.ACCESS_DENIED, message: `nft refused the isolation rules: ${r.stderr.slice(0, 300)}` };
    return { error: ERROR.SUCCESS };
  }

  async rejoin(): Promise<IsolationOutcome> {
    const unsupported = this.unsupported();
    if (unsupported) return unsupported;
    // Without nft the rules cannot even be looked at: "not isolated" would be a success it did not check.
    const listed = await runNft(['list', 'table', 'inet', ISOLATION_TABLE]);
    if (listed.missing) return { error: ERROR.NOT_SUPPORTED, message: 'nft (nftables) is not installed: network isolation is not available' };
    if (listed.code !== 0) return { error: ERROR.SUCCESS, message: 'not isolated' };
    const r = await runNft(['delete', 'table', 'inet', ISOLATION_TABLE]);
    if (r.missing) return { error: ERROR.NOT_SUPPORTED, message: 'nft (nftables) is not installed' };
    if (r.code !== 0) return { error: ERROR.ACCESS_DENIED, message: `nft could not remove the isolation rules: ${r.stderr.slice(0, 300)}` };
    return { error: ERROR.SUCCESS };
  }

  async isIsolated(): Promise<boolean> {
    if (process.platform !== 'linux') return false;
    const r = await runNft(['list', 'table', 'inet', ISOLATION_TABLE]);
    return r.code === 0;
  }

  /** Root (or the capability nft needs) and an nft binary that answers: `nft list tables` is read-only. */
  async readiness(): Promise<IsolationReadiness> {
    if (process.platform !== 'linux') return { ready: false, detail: `network isolation is implemented with nftables on Linux only, not on ${process.platform}` };
    const problems: string[] = [];
    if (typeof process.getuid === 'function' && process.getuid() !== 0) problems.push('the sensor does not run as root');
    const version = await runNft(['--version']);
    if (version.missing) problems.push('nft (nftables) is not installed');
    else if (version.code !== 0) problems.push(`nft --version failed: ${version.stderr.slice(0, 200)}`);
    if (problems.length === 0) {
      const list = await runNft(['list', 'tables']);
      if (list.code !== 0) problems.push(`nft cannot read the ruleset: ${list.stderr.slice(0, 200) || `exit ${list.code}`}`);
    }
    if (problems.length > 0) return { ready: false, detail: `network isolation unavailable: ${problems.join('; ')}` };
    return { ready: true, detail: 'nftables usable (root, nft list tables works)' };
  }

  private unsupported(): IsolationOutcome | undefined {
    if (process.platform !== 'linux') return { error: ERROR.NOT_SUPPORTED, message: `network isolation is implemented with nftables on Linux only, not on ${process.platform}` };
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return { error: ERROR.ACCESS_DENIED, message: 'network isolation needs root (nftables): run the sensor as root' };
    return undefined;
  }
}
