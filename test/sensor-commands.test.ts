// The reference sensor's command runner on its own: honest errors when isolation cannot be done, the
// nftables ruleset it installs, and argument checking.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandRunner, type CommandContext } from '../src/sensor/commands/command-runner.js';
import { isolationRuleset, NftIsolation, type NetworkIsolation } from '../src/sensor/commands/network-isolation.js';
import { canIsolateHere, pathWithoutNft } from './harness/nft.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function runner(isolation: NetworkIsolation, changes: boolean[] = []): CommandRunner {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-cmd-'));
  dirs.push(stateDir);
  const ctx: CommandContext = {
    stateDir, cloud: { host: '127.0.0.1', port: 4830 }, allowRun: false, isolation,
    selfTest: async () => [{ name: 'x', ok: false, detail: 'broken on purpose' }],
    applyCollector: () => undefined,
    isolationChanged: (v) => changes.push(v),
  };
  return new CommandRunner(ctx);
}

describe('sensor commands', () => {
  it('never reports an isolation it did not achieve', async () => {
    const changes: boolean[] = [];
    const failing: NetworkIsolation = {
      isolate: async () => ({ error: 5, message: 'network isolation needs root (nftables): run the sensor as root' }),
      rejoin: async () => ({ error: 50, message: 'nft (nftables) is not installed' }),
      isIsolated: async () => false,
    };
    const r = runner(failing, changes);
    expect(await r.execute('segregate_network')).toEqual({ eventType: 'SEGREGATE_NETWORK', payload: { ERROR: 5, ERROR_MESSAGE: 'network isolation needs root (nftables): run the sensor as root' } });
    expect(await r.execute('rejoin_network')).toMatchObject({ eventType: 'REJOIN_NETWORK', payload: { ERROR: 50 } });
    expect(changes).toEqual([]);
    expect(await r.execute('segregate_network --now')).toMatchObject({ eventType: 'SEGREGATE_NETWORK', payload: { ERROR: 87 } });
  });

  it('the real backend refuses honestly without root', async () => {
    if (process.getuid?.() === 0) {
      // As root the unprivileged branch is reached by pretending to be another user.
      const original = process.getuid;
      process.getuid = () => 1000;
      try {
        expect(await new NftIsolation().isolate({ host: '127.0.0.1', port: 1 })).toMatchObject({ error: process.platform === 'linux' ? 5 : 50 });
      } finally {
        process.getuid = original;
      }
    } else {
      expect((await new NftIsolation().isolate({ host: '127.0.0.1', port: 1 })).error).not.toBe(0);
    }
  });

  it('the real backend on a host without nft: isolate and rejoin answer ERROR 50, and nothing claims isolation', async () => {
    // Root (real or pretended: the root check comes first and only the missing nft must decide), nft off PATH.
    const { PATH: path0 } = process.env;
    const getuid = process.getuid;
    process.env.PATH = pathWithoutNft();
    if (getuid?.() !== 0) process.getuid = () => 0;
    try {
      const nft = new NftIsolation();
      const isolated = await nft.isolate({ host: '127.0.0.1', port: 4830 });
      expect(isolated.error).toBe(50);
      if (process.platform === 'linux') expect(isolated.message).toMatch(/nft \(nftables\) is not installed/);
      const rejoined = await nft.rejoin();
      expect(rejoined.error).toBe(50);
      expect(await nft.isIsolated()).toBe(false);
      // Through the command runner: SEGREGATE_NETWORK / REJOIN_NETWORK with ERROR 50, and no isolation change reported.
      const changes: boolean[] = [];
      const r = runner(nft, changes);
      expect(await r.execute('segregate_network')).toMatchObject({ eventType: 'SEGREGATE_NETWORK', payload: { ERROR: 50 } });
      expect(await r.execute('rejoin_network')).toMatchObject({ eventType: 'REJOIN_NETWORK', payload: { ERROR: 50 } });
      expect(changes).toEqual([]);
    } finally {
      process.env.PATH = path0;
      process.getuid = getuid;
    }
  });

  it('says whether isolation could be done here (root and a working nft) without changing anything', async () => {
    const here = await new NftIsolation().readiness();
    expect(here.ready, here.detail).toBe(canIsolateHere());
    if (process.platform !== 'linux') {
      expect(here.detail).toMatch(/Linux only/);
      return;
    }
    const original = process.env.PATH;
    process.env.PATH = pathWithoutNft();
    try {
      expect(await new NftIsolation().readiness()).toEqual({ ready: false, detail: expect.stringMatching(/nft \(nftables\) is not installed/) as string });
    } finally {
      process.env.PATH = original;
    }
    const getuid = process.getuid;
    process.getuid = () => 1000;
    try {
      expect(await new NftIsolation().readiness()).toEqual({ ready: false, detail: expect.stringMatching(/does not run as root/) as string });
    } finally {
      process.getuid = getuid;
    }
  });

  it('the ruleset drops everything but loopback and the cloud endpoint, IPv4 and IPv6', () => {
    const rules = isolationRuleset(['10.0.0.1', 'fd00::1'], 443);
    expect(rules).toContain('table inet picket_isolation {');
    expect(rules).toMatch(/hook input priority -10; policy drop;/);
    expect(rules).toMatch(/hook output priority -10; policy drop;/);
    expect(rules).toContain('ip saddr 10.0.0.1 tcp sport 443 accept');
    expect(rules).toContain('ip6 daddr fd00::1 tcp dport 443 accept');
    expect(rules).toContain('oif "lo" accept');
  });

  it('a failed self-test check makes SELF_TEST_RESULT say so; a bad command line is ERROR 87', async () => {
    const r = runner({ isolate: async () => ({ error: 0 }), rejoin: async () => ({ error: 0 }), isIsolated: async () => false });
    expect(await r.execute('selftest')).toMatchObject({ eventType: 'SELF_TEST_RESULT', payload: { ERROR: 1, ERROR_MESSAGE: 'failed: x', CHECKS: [{ name: 'x', ok: false }] } });
    expect(await r.execute('run "unterminated')).toMatchObject({ eventType: 'RECEIPT', payload: { ERROR: 87 } });
    expect(await r.execute('set_performance_mode --is-enabled maybe')).toMatchObject({ eventType: 'SET_PERFORMANCE_MODE', payload: { ERROR: 87 } });
  });
});
