// The management commands as a user runs them: the built CLI against a server process, finding its
// credentials in the data directory, the environment or flags; human and --json output; errors.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorMessage } from '../src/protocol/messages.js';
import { ProtocolClient, telemetry } from './harness/protocol-client.js';
import { runCli, startServerProcess, type ServerProcess } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

interface Envelope {
  routing: { event_type: string; event_time: number; sid: string };
  event: Record<string, unknown>;
}

/** No PICKET_* settings from the environment running the tests. */
const CLEAN_ENV = { PICKET_URL: '', PICKET_API_KEY: '', PICKET_DATA: '', PICKET_DATA_DIR: '', PICKET_CA: '' };

describe('picket management commands (built CLI against a server process)', () => {
  let server: ServerProcess;
  let emptyDir: string;
  let sid: string;
  let sensor: ProtocolClient;

  /** Runs the CLI with the server's data directory (credentials.json discovery). */
  const cli = (args: string[], options: { env?: Record<string, string>; input?: string } = {}) =>
    runCli([...args, '--data', server.dataDir], { env: { ...CLEAN_ENV, ...options.env }, input: options.input, cwd: emptyDir });

  function ok(r: { code: number | null; stdout: string; stderr: string }): string {
    expect(r.code, `stderr: ${r.stderr}\nstdout: ${r.stdout}`).toBe(0);
    return r.stdout;
  }

  beforeAll(async () => {
    server = await startServerProcess();
    emptyDir = mkdtempSync(path.join(os.tmpdir(), 'picket-cli-'));
    sensor = new ProtocolClient(server.url);
    await sensor.hello({ installation_key: server.credentials.installation_key }, { host: { hostname: 'cli-host' } });
    sid = (await sensor.welcome()).sid;
    sensor.sendEvents(1, telemetry(5, 'NEW_PROCESS', Date.now() - 5000));
    await sensor.waitForAck(1);
  });

  afterAll(async () => {
    sensor?.close();
    server?.kill('SIGTERM');
    await server?.exited;
    if (server) rmSync(server.dataDir, { recursive: true, force: true });
    if (emptyDir) rmSync(emptyDir, { recursive: true, force: true });
  });

  it('picket --help exits 0 and lists the subcommands', async () => {
    const r = await runCli(['--help'], { env: CLEAN_ENV, cwd: emptyDir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Usage: picket /);
    for (const command of ['serve', 'sensor', 'sensors', 'keys', 'org', 'events', 'task', 'outputs', 'usage', 'simulate', 'adapter']) {
      expect(r.stdout, command).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    }
  });

  describe('credentials discovery', () => {
    it('finds URL and key in <data>/credentials.json with --data', async () => {
      const stdout = ok(await cli(['org', 'info']));
      expect(stdout).toContain(server.credentials.oid);
      expect(stdout).toMatch(/name:\s+default/);
      expect(stdout).toContain(`${server.url.replace(/^http/, 'ws')}/sensor`);
      const json = JSON.parse(ok(await cli(['org', 'info', '--json']))) as { oid: string; name: string; url: { api: string } };
      expect(json).toMatchObject({ oid: server.credentials.oid, name: 'default', url: { api: server.url } });
    });

    it('finds them in PICKET_DATA, or PICKET_URL and PICKET_API_KEY, or --url and --api-key', async () => {
      const viaDataEnv = await runCli(['org', 'info', '--json'], { env: { ...CLEAN_ENV, PICKET_DATA: server.dataDir }, cwd: emptyDir });
      expect(JSON.parse(ok(viaDataEnv)).oid).toBe(server.credentials.oid);
      const viaEnv = await runCli(['org', 'info', '--json'], { env: { ...CLEAN_ENV, PICKET_URL: server.url, PICKET_API_KEY: server.credentials.api_key }, cwd: emptyDir });
      expect(JSON.parse(ok(viaEnv)).oid).toBe(server.credentials.oid);
      const viaFlags = await runCli(['sensors', 'list', '--json', '--url', server.url, '--api-key', server.credentials.api_key], { env: CLEAN_ENV, cwd: emptyDir });
      expect((JSON.parse(ok(viaFlags)) as Array<{ sid: string }>).map((s) => s.sid)).toContain(sid);
    });

    it('without credentials it says where it looked and exits non-zero', async () => {
      const r = await runCli(['sensors', 'list'], { env: CLEAN_ENV, cwd: emptyDir });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/^picket: no cloud URL and API key found/);
      expect(r.stderr).toContain(path.join(emptyDir, 'data', 'credentials.json'));
      expect(r.stdout).toBe('');
    });

    it('an unreachable cloud is a clear error', async () => {
      const r = await runCli(['sensors', 'list', '--url', 'http://127.0.0.1:1', '--api-key', server.credentials.api_key], { env: CLEAN_ENV, cwd: emptyDir });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/picket: cannot reach the cloud at http:\/\/127\.0\.0\.1:1/);
    });
  });

  describe('sensors', () => {
    it('sensors list prints a table for people and JSON with --json', async () => {
      const stdout = ok(await cli(['sensors', 'list']));
      const [header, ...rows] = stdout.trim().split('\n');
      expect(header!.split(/\s{2,}/)).toEqual(['SID', 'HOSTNAME', 'PLATFORM', 'ARCH', 'STATE', 'TAGS', 'ENROLLED', 'ALIVE']);
      const row = rows.find((r) => r.startsWith(sid))!;
      expect(row).toBeDefined();
      expect(row.split(/\s{2,}/).slice(1, 6)).toEqual(['cli-host', 'linux', 'x64', 'online', '-']);
      expect(row).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/);

      const json = JSON.parse(ok(await cli(['sensors', 'list', '--json']))) as Array<{ sid: string; hostname: string; is_online: boolean; plat: number }>;
      expect(json.find((s) => s.sid === sid)).toMatchObject({ hostname: 'cli-host', is_online: true, plat: 0x20000000 });

      expect(ok(await cli(['sensors', 'list', '--hostname', 'nomatch'])).trim()).toBe('no sensors');
      expect(JSON.parse(ok(await cli(['sensors', 'list', '--hostname', 'CLI-', '--json']))) as unknown[]).toHaveLength(1);
    });

    it('sensors list pages up to --limit and says when there are more', async () => {
      const extra = new ProtocolClient(server.url);
      await extra.hello({ installation_key: server.credentials.installation_key }, { host: { hostname: 'cli-extra' } });
      await extra.welcome();
      try {
        const r = await cli(['sensors', 'list', '--limit', '1', '--json']);
        expect(JSON.parse(ok(r)) as unknown[]).toHaveLength(1);
        expect(r.stderr).toContain('--all');
        expect(JSON.parse(ok(await cli(['sensors', 'list', '--all', '--json']))) as unknown[]).toHaveLength(2);
        expect(JSON.parse(ok(await cli(['sensors', 'list', '--online', '--hostname', 'cli-e', '--json']))) as unknown[]).toHaveLength(1);
      } finally {
        extra.close();
      }
    });

    it('sensors get shows one sensor', async () => {
      const stdout = ok(await cli(['sensors', 'get', sid]));
      expect(stdout).toMatch(new RegExp(`^sid:\\s+${sid}$`, 'm'));
      expect(stdout).toMatch(/^hostname:\s+cli-host$/m);
      expect(stdout).toMatch(/^platform:\s+linux \(0x20000000\)$/m);
      expect(stdout).toMatch(/^online:\s+yes, since \d{4}-/m);
      expect(stdout).toMatch(/^state:\s+online$/m);
      expect(stdout).toMatch(/^last issue:\s+-$/m);
      const json = JSON.parse(ok(await cli(['sensors', 'get', sid, '--json']))) as { info: { sid: string }; is_online: boolean };
      expect(json.info.sid).toBe(sid);
      expect(json.is_online).toBe(true);
    });

    it('sensors get of an unknown sensor exits non-zero with the API message', async () => {
      const ghost = randomUUID();
      const r = await cli(['sensors', 'get', ghost]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`picket: sensor ${ghost} not found (HTTP 404)`);
    });

    it('sensors tag adds (with a ttl), removes and shows tags', async () => {
      const added = ok(await cli(['sensors', 'tag', sid, '--add', 'web,prod', '--ttl', '600']));
      expect(added).toMatch(/^TAG\s+BY\s+ADDED\s+EXPIRES/);
      expect(added).toMatch(/^prod\s+api:bootstrap-admin\s+\S+Z\s+\S+Z$/m);
      expect(added).toMatch(/^web\s/m);
      const removed = ok(await cli(['sensors', 'tag', sid, '--remove', 'prod', '--add', 'db']));
      expect(removed).not.toMatch(/^prod\s/m);
      expect(removed).toMatch(/^db\s+api:bootstrap-admin\s+\S+Z\s+never$/m);
      const json = JSON.parse(ok(await cli(['sensors', 'tag', sid, '--json']))) as { tags: Record<string, Record<string, unknown>> };
      expect(Object.keys(json.tags[sid]!).sort()).toEqual(['db', 'web']);
      const list = JSON.parse(ok(await cli(['sensors', 'list', '--json']))) as Array<{ sid: string; tags: string[] }>;
      expect(list.find((s) => s.sid === sid)!.tags).toEqual(['db', 'web']);
      const bad = await cli(['sensors', 'tag', sid, '--add', 'x', '--ttl', 'soon']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('--ttl');
    });
  });

  describe('keys and organization', () => {
    it('keys create, list and delete installation keys', async () => {
      const created = JSON.parse(ok(await cli(['keys', 'create', '--desc', 'cli made', '--tags', 't1,t2', '--json']))) as { iid: string; key: string; tags: string };
      expect(created.key.startsWith(`${created.iid}.`)).toBe(true);
      expect(created.tags).toBe('t1,t2');

      const table = ok(await cli(['keys', 'list']));
      expect(table).toMatch(/^IID\s+DESCRIPTION\s+TAGS\s+CREATED/);
      expect(table).toMatch(new RegExp(`^${created.iid}\\s+cli made\\s+t1,t2\\s+\\d{4}-`, 'm'));
      expect(table).not.toContain(created.key.split('.')[1]);
      const list = JSON.parse(ok(await cli(['keys', 'list', '--json']))) as Array<{ iid: string }>;
      expect(list.map((k) => k.iid)).toContain(created.iid);

      const human = ok(await cli(['keys', 'create', '--desc', 'human']));
      expect(human).toMatch(/^Key \(shown only now\): [0-9a-f-]{36}\.\S+$/m);

      expect(ok(await cli(['keys', 'delete', created.iid])).trim()).toBe(`installation key ${created.iid} deleted`);
      expect((JSON.parse(ok(await cli(['keys', 'list', '--json']))) as Array<{ iid: string }>).map((k) => k.iid)).not.toContain(created.iid);
      const again = await cli(['keys', 'delete', created.iid]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/^picket: installation key \S+ not found \(HTTP 404\)$/m);
    });

    it('org api-keys create/list/delete; a read key is refused changes with 403', async () => {
      const created = JSON.parse(ok(await cli(['org', 'api-keys', 'create', 'ci-reader', '--role', 'read', '--json']))) as { key_id: string; key: string; role: string };
      expect(created.role).toBe('read');
      expect(ok(await cli(['org', 'api-keys', 'list']))).toMatch(new RegExp(`^${created.key_id}\\s+ci-reader\\s+read\\s`, 'm'));
      const asReader = (args: string[]) => runCli([...args, '--url', server.url, '--api-key', created.key], { env: CLEAN_ENV, cwd: emptyDir });
      expect(JSON.parse(ok(await asReader(['sensors', 'list', '--json']))) as unknown[]).not.toHaveLength(0);
      const refused = await asReader(['sensors', 'delete', sid]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^picket: .*read role.* \(HTTP 403\)$/m);
      ok(await cli(['org', 'api-keys', 'delete', created.key_id]));
      const dead = await asReader(['sensors', 'list']);
      expect(dead.code).toBe(1);
      expect(dead.stderr).toContain('(HTTP 401)');
      const badRole = await cli(['org', 'api-keys', 'create', 'x', '--role', 'god']);
      expect(badRole.code).not.toBe(0);
    });

    it('org list and org create (root key)', async () => {
      const created = JSON.parse(ok(await cli(['org', 'create', 'cli-second', '--quota', '3', '--json']))) as { oid: string; api_key: string; installation_key: string; quota: number };
      expect(created.quota).toBe(3);
      const list = ok(await cli(['org', 'list']));
      expect(list).toMatch(new RegExp(`^${created.oid}\\s+cli-second\\s+3\\s`, 'm'));
      expect(list).toContain(server.credentials.oid);
      const dup = await cli(['org', 'create', 'cli-second']);
      expect(dup.code).toBe(1);
      expect(dup.stderr).toContain('(HTTP 409)');
      // The new org's key sees only its own organization.
      const other = await runCli(['org', 'list', '--json', '--url', server.url, '--api-key', created.api_key], { env: CLEAN_ENV, cwd: emptyDir });
      expect((JSON.parse(ok(other)) as Array<{ oid: string }>).map((o) => o.oid)).toEqual([created.oid]);
    });
  });

  describe('events', () => {
    it('events --sid --json prints the timeline as NDJSON envelopes', async () => {
      const stdout = ok(await cli(['events', '--sid', sid, '--json']));
      const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as Envelope);
      const types = events.map((e) => e.routing.event_type);
      expect(types.filter((t) => t === 'NEW_PROCESS')).toHaveLength(5);
      expect(types).toContain('CONNECTED');
      expect(types).toContain('enrollment');
      expect(events.every((e) => e.routing.sid === sid)).toBe(true);
      const times = events.map((e) => e.routing.event_time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      // The output is what `events validate` reads.
      const check = await cli(['events', 'validate', '--produced'], { input: stdout });
      expect(check.code, check.stderr + check.stdout).toBe(0);
    });

    it('events --sid prints one line per event for people, filters by type and stops at --limit', async () => {
      const stdout = ok(await cli(['events', '--sid', sid, '--type', 'NEW_PROCESS', '--start', '-1h']));
      const lines = stdout.trim().split('\n');
      expect(lines).toHaveLength(5);
      for (const line of lines) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}NEW_PROCESS {2}FILE_PATH=\/usr\/bin\/proc-\d /);
      expect(lines[0]).toContain('COMMAND_LINE="proc-0 --flag"');

      const newest = ok(await cli(['events', '--sid', sid, '--type', 'NEW_PROCESS', '--reverse', '--limit', '2']));
      expect(newest.trim().split('\n')).toHaveLength(2);
      expect(newest).toContain('proc-4');
      const limited = await cli(['events', '--sid', sid, '--limit', '1', '--json']);
      expect(ok(limited).trim().split('\n')).toHaveLength(1);
      expect(limited.stderr).toContain('--limit');

      const none = await cli(['events', '--sid', sid, '--start', '2000-01-01T00:00:00Z', '--end', '2000-01-02T00:00:00Z']);
      expect(ok(none)).toBe('');
      expect(none.stderr).toContain('no events');
    });

    it('events validate reports each invalid line, naming the field, and exits 1', async () => {
      const [first] = ok(await cli(['events', '--sid', sid, '--type', 'NEW_PROCESS', '--json', '--limit', '1'])).trim().split('\n');
      const good = JSON.parse(first!) as Envelope;
      const bad = { ...good, routing: { ...good.routing, event_time: 'yesterday' } };
      const r = await cli(['events', 'validate', '--produced'], { input: `${JSON.stringify(good)}\n${JSON.stringify(bad)}\nnot json\n` });
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/^line 1: valid/m);
      expect(r.stdout).toMatch(/^line 2: invalid .*routing\.event_time/m);
      expect(r.stdout).toMatch(/^line 3: invalid .*not valid JSON/m);
      // Only valid lines: exit 0.
      expect((await cli(['events', 'validate', '--produced'], { input: `${JSON.stringify(good)}\n` })).code).toBe(0);
    });

    it('events subcommands still run, and events without --sid or with bad times is an error', async () => {
      const schema = JSON.parse(ok(await cli(['events', 'schema']))) as Record<string, unknown>;
      expect(typeof schema).toBe('object');
      const noSid = await cli(['events']);
      expect(noSid.code).not.toBe(0);
      expect(noSid.stderr).toContain('--sid');
      expect((await cli(['events', '--sid', sid, '--stream', 'deployment'])).stderr).toContain('not both');
      const badStream = await cli(['events', '--stream', 'nope']);
      expect(badStream.code).toBe(1);
      expect(badStream.stderr).toMatch(/HTTP 400/);
      const badTime = await cli(['events', '--sid', sid, '--start', 'yesterday-ish']);
      expect(badTime.code).not.toBe(0);
      expect(badTime.stderr).toContain('--start');
      const other = await cli(['events', '--sid', randomUUID()]);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/not found \(HTTP 404\)/);
    });
  });

  describe('deployment guards', () => {
    it('org quota shows usage, sets the quota (quota_changed in the deployment stream) and refuses nonsense', async () => {
      expect(ok(await cli(['org', 'quota']))).toMatch(/^1 online of unlimited$/m);
      expect(ok(await cli(['org', 'quota', '5'])).trim()).toBe(`quota of ${server.credentials.oid}: unlimited -> 5`);
      expect(JSON.parse(ok(await cli(['org', 'quota', '--json'])))).toEqual({ usage: 1, quota: 5, breakdown: { linux: { count: 1, weight: 1, quota: 1 } } });
      expect(JSON.parse(ok(await cli(['org', 'quota', 'unlimited', '--json'])))).toMatchObject({ old_quota: 5, new_quota: null, changed: true });
      const bad = await cli(['org', 'quota', 'lots']);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/unlimited/);

      const lines = ok(await cli(['events', '--stream', 'deployment', '--type', 'quota_changed'])).trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/quota_changed\s+-\s+.*new_quota=5/);
      const json = ok(await cli(['events', '--stream', 'deployment', '--json'])).trim().split('\n').map((l) => JSON.parse(l) as Envelope);
      // The sensors enrolled by the tests above come first, then the two quota changes.
      expect(json.map((e) => e.routing.event_type).slice(-3)).toEqual(['enrollment', 'quota_changed', 'quota_changed']);
      expect(json.filter((e) => e.routing.event_type === 'enrollment').map((e) => e.routing.sid)).toContain(sid);
    });

    it('sensors reenroll orders a copy to enroll again; undelete of a sensor that is not deleted says so', async () => {
      const copy = new ProtocolClient(server.url);
      await copy.hello({ installation_key: server.credentials.installation_key }, { host: { hostname: 'cli-copy' } });
      const copySid = (await copy.welcome()).sid;
      const told = JSON.parse(ok(await cli(['sensors', 'reenroll', copySid, '--hostname', 'cli-copy', '--json'])));
      expect(told).toEqual({ sid: copySid, hostname: 'cli-copy', delivered: true });
      expect((await copy.closed).code).toBe(4012);
      expect(ok(await cli(['sensors', 'reenroll', copySid, '--hostname', 'elsewhere'])).trim()).toBe(`re-enroll of elsewhere ${copySid}: ordered for its next connection`);
      expect(ok(await cli(['sensors', 'get', copySid]))).toMatch(/^re-enroll order:\s+pending for elsewhere since \d{4}-/m);
      expect(ok(await cli(['sensors', 'undelete', copySid])).trim()).toBe(`sensor ${copySid} was not deleted`);
    });
  });

  describe('sensors get explains refusals and crashes', () => {
    it('a sensor refused over quota shows state refused with the reason, and it as its last issue', async () => {
      const org = JSON.parse(ok(await cli(['org', 'create', 'cli-quota-one', '--quota', '1', '--json']))) as { oid: string; api_key: string; installation_key: string };
      const asOrg = (args: string[]) => runCli([...args, '--url', server.url, '--api-key', org.api_key], { env: CLEAN_ENV, cwd: emptyDir });
      const first = new ProtocolClient(server.url);
      await first.hello({ installation_key: org.installation_key }, { host: { hostname: 'quota-first' } });
      await first.welcome();
      const second = new ProtocolClient(server.url);
      try {
        await second.hello({ installation_key: org.installation_key }, { host: { hostname: 'quota-second' } });
        expect((await second.closed).code).toBe(4010);
        const refusal = second.messages.find((m): m is ErrorMessage => m.t === 'error')!;
        const refusedSid = refusal.identity!.sid;

        const stdout = ok(await asOrg(['sensors', 'get', refusedSid]));
        expect(stdout).toMatch(/^hostname:\s+quota-second$/m);
        expect(stdout).toMatch(/^online:\s+no/m);
        expect(stdout).toMatch(/^state:\s+refused: organization at its quota of 1 sensor online; refused, retry after \d+(\.\d+)? s$/m);
        expect(stdout).toMatch(/^last issue:\s+over_quota at \d{4}-\d\d-\d\dT\S+Z: organization at its quota of 1 sensor online/m);
        const json = JSON.parse(ok(await asOrg(['sensors', 'get', refusedSid, '--json']))) as { info: { state: string; state_reason: string; last_issue: { kind: string } } };
        expect(json.info).toMatchObject({ state: 'refused', last_issue: { kind: 'over_quota' } });
        expect(json.info.state_reason).toContain('quota of 1');
      } finally {
        first.close();
        second.close();
      }
    });

    it('a sensor that reported a crash shows it as its last issue, with where it crashed', async () => {
      const c = new ProtocolClient(server.url);
      await c.hello({ installation_key: server.credentials.installation_key }, { host: { hostname: 'cli-crashy' } });
      const welcome = await c.welcome();
      const crashSid = welcome.sid;
      c.close();
      await c.closed;
      expect(ok(await cli(['sensors', 'get', crashSid]))).toMatch(/^last issue:\s+-$/m);

      const crashedAt = Date.now() - 60_000;
      const again = new ProtocolClient(server.url);
      await again.opened;
      again.send({
        t: 'hello', versions: [1], auth: { sid: crashSid, secret: welcome.identity!.secret }, host: ProtocolClient.host({ hostname: 'cli-crashy' }), stream_id: randomUUID(),
        crash: { crash_id: randomUUID(), file_id: 1794283211, line_number: 17, thread_id: 4821, crashed_at: crashedAt, message: 'TypeError: boom' },
      });
      await again.welcome();
      try {
        const stdout = await waitFor(async () => {
          const out = ok(await cli(['sensors', 'get', crashSid]));
          return /^last issue:\s+crash/m.test(out) ? out : undefined;
        }, { message: 'the crash in sensors get' });
        expect(stdout).toMatch(new RegExp(`^last issue:\\s+crash at \\S+Z: crashed at ${new Date(crashedAt).toISOString().replace(/\./g, '\\.')} \\(FILE_ID 1794283211, LINE_NUMBER 17, THREAD_ID 4821\\): TypeError: boom$`, 'm'));
        // A crash is reported, not refused: the sensor is online.
        expect(stdout).toMatch(/^state:\s+online$/m);
      } finally {
        again.close();
      }
    });
  });

  describe('deleting a sensor', () => {
    it('sensors delete closes its session and removes it from the list', async () => {
      const stdout = ok(await cli(['sensors', 'delete', sid]));
      expect(stdout.trim()).toBe(`sensor ${sid} deleted (its live session was closed)`);
      expect((await sensor.closed).code).toBe(4011);
      const list = JSON.parse(ok(await cli(['sensors', 'list', '--json']))) as Array<{ sid: string }>;
      expect(list.map((s) => s.sid)).not.toContain(sid);
      const all = await waitFor(async () => {
        const r = JSON.parse(ok(await cli(['sensors', 'list', '--deleted', '--json']))) as Array<{ sid: string; deleted: string | null }>;
        return r.find((s) => s.sid === sid);
      });
      expect(all.deleted).toMatch(/^\d{4}-/);
      expect(ok(await cli(['sensors', 'list', '--deleted']))).toMatch(new RegExp(`^${sid}\\s+cli-host\\s+linux\\s+x64\\s+deleted\\s`, 'm'));
      expect(ok(await cli(['sensors', 'get', sid]))).toMatch(/^state:\s+deleted: deleted \d{4}-.*denied for 720h0m0s/m);
      expect(ok(await cli(['sensors', 'undelete', sid])).trim()).toBe(`sensor ${sid} undeleted`);
      expect(JSON.parse(ok(await cli(['sensors', 'get', sid, '--json']))).info).toMatchObject({ state: 'offline', deleted: null });
    });
  });
});
