// Cluster mode end to end (issue 9): three real `picket serve` processes on loopback ports sharing the
// local PostgreSQL (one schema) and NATS JetStream. Skipped with a message without them, never with CI=true.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterNames } from '../src/cluster/cluster-names.js';
import { outputConsumerName } from '../src/cluster/output-consumers.js';
import { CloseCode } from '../src/protocol/close-codes.js';
import type { ErrorMessage, WelcomeMessage } from '../src/protocol/messages.js';
import { clusterUnavailable, NATS_URL, TestCluster } from './harness/cluster.js';
import { POSTGRES_URL } from './harness/postgres.js';
import { startSensorProcess, type ManagedProcess } from './harness/processes.js';
import { ProtocolClient } from './harness/protocol-client.js';
import { waitFor } from './harness/wait.js';

interface Envelope {
  routing: { event_type: string; sid: string; investigation_id?: string };
  event: Record<string, unknown>;
}

describe.skipIf(clusterUnavailable !== undefined)('cluster of three nodes', () => {
  const cluster = new TestCluster();
  const sensors: ManagedProcess[] = [];

  beforeAll(async () => {
    await cluster.start('a');
    await Promise.all([cluster.start('b'), cluster.start('c')]);
  }, 60_000);

  afterAll(async () => {
    for (const s of sensors) s.kill('SIGKILL');
    await cluster.close();
  }, 60_000);

  it('a sensor connected to node A is tasked through node B and its answer is read from node C', async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'picket-cluster-sensor-'));
    const sensor = startSensorProcess({ url: cluster.node('a').url, key: cluster.credentials.installation_key, stateDir, hostname: 'on-node-a' });
    sensors.push(sensor);
    const sid = await waitFor(() => (existsSync(path.join(stateDir, 'identity.json')) ? (JSON.parse(readFileSync(path.join(stateDir, 'identity.json'), 'utf8')) as { sid: string }).sid : undefined), { message: 'enrolled' });
    // Online as seen from the nodes that do not hold its session.
    for (const node of ['b', 'c']) {
      await waitFor(async () => (await cluster.api<{ is_online: boolean }>(node, 'GET', `/v1/${sid}`)).body.is_online, { message: `online seen from ${node}` });
    }

    const posted = await cluster.api<{ tasks: Array<{ task_id: string }> }>('b', 'POST', `/v1/${sid}`, { tasks: ['selftest'], investigation_id: 'cross-node' });
    expect(posted.status).toBe(200);
    const taskId = posted.body.tasks[0]!.task_id;
    const task = await waitFor(async () => {
      const t = (await cluster.api<{ state: string; error: number; answer: Envelope }>('c', 'GET', `/v1/tasks/${taskId}`)).body;
      return t.state === 'answered' ? t : undefined;
    }, { timeoutMs: 20_000, message: 'the answer, read from node C' });
    expect(task.error).toBe(0);
    expect(task.answer.routing).toMatchObject({ event_type: 'SELF_TEST_RESULT', sid, investigation_id: 'cross-node' });
    const timeline = await cluster.api<{ events: Envelope[] }>('c', 'GET', `/v1/insight/${cluster.credentials.oid}/${sid}?start=0&end=9999999999&limit=1000`);
    expect(timeline.body.events.filter((e) => e.routing.investigation_id === 'cross-node').map((e) => e.routing.event_type)).toEqual(['SELF_TEST', 'CLOUD_NOTIFICATION', 'SELF_TEST_RESULT']);
    sensor.kill('SIGTERM');
    await sensor.exited;
    await waitFor(async () => !(await cluster.api<{ is_online: boolean }>('c', 'GET', `/v1/${sid}`)).body.is_online, { message: 'offline seen from C' });
  }, 60_000);

  it('quota 10 across three nodes with 50 sensors connecting at once: exactly 10 online', async () => {
    const { oid, installation_key } = cluster.credentials;
    expect((await cluster.api('a', 'POST', `/v1/orgs/${oid}/quota`, { quota: 10 })).status).toBe(200);
    const ids = ['a', 'b', 'c'];
    for (const node of ids) await waitFor(async () => (await cluster.api<{ usage: number }>(node, 'GET', `/v1/quota_usage/${oid}`)).body.usage === 0, { message: `nobody online seen from ${node}` });
    const clients = Array.from({ length: 50 }, (_, i) => new ProtocolClient(cluster.node(ids[i % 3]!).url));
    await Promise.all(clients.map((c, i) => c.hello({ installation_key }, { host: { hostname: `quota-${i}`, fingerprint: String(i).padStart(64, '0') } })));
    // Every client is either welcomed or refused and closed.
    await waitFor(() => clients.every((c) => c.messages.some((m) => m.t === 'welcome') || c.ws.readyState === c.ws.CLOSED), { timeoutMs: 30_000, message: 'every hello decided' });
    const welcomed = clients.filter((c) => c.messages.some((m) => m.t === 'welcome'));
    expect(welcomed.length, JSON.stringify(clients.filter((c) => !c.messages.some((m) => m.t === 'welcome')).map((c) => c.messages).slice(0, 3))).toBe(10);
    const refused = clients.filter((c) => !welcomed.includes(c));
    for (const c of refused) expect(JSON.stringify(c.messages)).toMatch(/quota/);
    for (const node of ids) {
      const usage = await waitFor(async () => {
        const u = (await cluster.api<{ usage: number; quota: number }>(node, 'GET', `/v1/quota_usage/${oid}`)).body;
        return u.usage === 10 ? u : undefined;
      }, { message: `usage 10 seen from ${node}` });
      expect(usage.quota).toBe(10);
    }
    for (const c of clients) c.close();
    await waitFor(async () => (await cluster.api<{ usage: number }>('a', 'GET', `/v1/quota_usage/${oid}`)).body.usage === 0, { message: 'usage back to 0' });
    await cluster.api('a', 'POST', `/v1/orgs/${oid}/quota`, { quota: null });
  }, 60_000);

  it('the clone and deleted-sensor rules hold when the two sessions land on different nodes', async () => {
    const { oid, installation_key } = cluster.credentials;
    const decided = async (c: ProtocolClient): Promise<{ welcome?: WelcomeMessage; code?: number; error?: ErrorMessage }> => {
      await waitFor(() => c.messages.some((m) => m.t === 'welcome') || c.ws.readyState === c.ws.CLOSED, { timeoutMs: 15_000, message: 'welcome or close' });
      const welcome = c.messages.find((m): m is WelcomeMessage => m.t === 'welcome');
      if (welcome) return { welcome };
      return { code: (await c.closed).code, error: c.messages.find((m): m is ErrorMessage => m.t === 'error') };
    };
    const timeline = async (node: string, sid: string, type: string): Promise<Envelope[]> =>
      (await cluster.api<{ events: Envelope[] }>(node, 'GET', `/v1/insight/${oid}/${sid}?start=0&end=9999999999&limit=1000&event_type=${type}`)).body.events;

    // The original enrolls through node A.
    const original = new ProtocolClient(cluster.node('a').url);
    await original.hello({ installation_key }, { host: { hostname: 'clone-original', fingerprint: 'a'.repeat(64) } });
    const { welcome } = await decided(original);
    expect(welcome?.identity).toBeDefined();
    const { sid, secret } = welcome!.identity!;
    await waitFor(async () => (await cluster.api<{ is_online: boolean }>('b', 'GET', `/v1/${sid}`)).body.is_online, { message: 'online seen from B' });

    // A copy of its identity on another host, through node B: refused as a clone, the original untouched.
    const copy = new ProtocolClient(cluster.node('b').url);
    await copy.hello({ sid, secret }, { host: { hostname: 'clone-copy', fingerprint: 'b'.repeat(64) } });
    const refused = await decided(copy);
    expect(refused.code).toBe(CloseCode.cloneConflict);
    expect(refused.error!.message).toMatch(/host "clone-copy".*"clone-original" holds a live session/);
    expect(original.ws.readyState).toBe(original.ws.OPEN);
    const clones = await waitFor(async () => {
      const found = await timeline('c', sid, 'sensor_clone');
      return found.length > 0 ? found : undefined;
    }, { message: 'sensor_clone readable from C' });
    expect(clones).toHaveLength(1);
    expect(clones[0]!.event).toEqual({ previous_hostname: 'clone-original', new_hostname: 'clone-copy' });

    // Deleted through node C: the session on node A is closed with the ban.
    const del = await cluster.api<{ deleted: boolean; disconnected: boolean }>('c', 'DELETE', `/v1/${sid}`);
    expect(del.body).toMatchObject({ deleted: true, disconnected: true });
    expect((await original.closed).code).toBe(CloseCode.deleted);
    // Coming back through node B: refused, reported once.
    for (let i = 0; i < 2; i++) {
      const again = new ProtocolClient(cluster.node('b').url);
      await again.hello({ sid, secret }, { host: { hostname: 'clone-original', fingerprint: 'a'.repeat(64) } });
      const denied = await decided(again);
      expect(denied.code).toBe(CloseCode.deleted);
      expect(denied.error).toMatchObject({ code: CloseCode.deleted, denied_for: '720h0m0s' });
    }
    const deletedEvents = await waitFor(async () => {
      const found = await timeline('a', sid, 'deleted_sensor');
      return found.length > 0 ? found : undefined;
    }, { message: 'deleted_sensor readable from A' });
    expect(deletedEvents).toHaveLength(1);
    expect(deletedEvents[0]!.event).toEqual({ denied_for: '720h0m0s' });
    expect((await cluster.api<{ undeleted: boolean }>('a', 'POST', `/v1/${sid}/undelete`)).body).toMatchObject({ undeleted: true });
  }, 60_000);

  it('a webhook cloud adapter runs on one node and takes posts through every node', async () => {
    const { oid } = cluster.credentials;
    const secret = 'cluster-webhook-secret-0123';
    const created = await cluster.api<{ sid: string }>('b', 'POST', `/v1/cloud_adapters/${oid}`, { name: 'hooks', type: 'webhook', secret, hostname: 'saas', mapping: { event_type_path: 'kind' } });
    expect(created.status).toBe(200);
    const runsOn = () => [...cluster.nodes.values()].filter((n) => n.logs().some((l) => l.msg === 'cloud adapter runs on this node' && l.cloud_adapter === 'hooks'));
    await waitFor(() => runsOn().length === 1, { message: 'the adapter placed on one node' });
    const post = async (node: string, kind: string, key = secret): Promise<Response> => {
      const url = `${cluster.node(node).url}/v1/ingest/webhook/${oid}/hooks`;
      // The adapter may still be connecting its sensor: 503 means "retry shortly".
      return waitFor(async () => {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-picket-secret': key }, body: JSON.stringify({ kind }) });
        return res.status === 503 ? undefined : res;
      }, { message: `a post through ${node}` });
    };
    for (const node of ['a', 'b', 'c']) {
      const res = await post(node, `HOOK_${node.toUpperCase()}`);
      expect(res.status, `through ${node}`).toBe(200);
      expect(await res.json()).toEqual({ accepted: 1 });
    }
    const other = ['a', 'b', 'c'].find((id) => cluster.node(id) !== runsOn()[0])!;
    expect((await post(other, 'HOOK_BAD', 'wrong-secret-wrong-secret')).status).toBe(401);
    await waitFor(async () => {
      const events = (await cluster.api<{ events: Envelope[] }>('c', 'GET', `/v1/insight/${oid}/${created.body.sid}?start=0&end=9999999999&limit=1000`)).body.events;
      const hooks = events.map((e) => e.routing.event_type).filter((t) => t.startsWith('HOOK_')).sort();
      return JSON.stringify(hooks) === JSON.stringify(['HOOK_A', 'HOOK_B', 'HOOK_C']);
    }, { message: 'each post stored once' });
    expect((await cluster.api('a', 'DELETE', `/v1/cloud_adapters/${oid}?name=hooks`)).status).toBe(200);
  }, 60_000);

  // Last in this file: it kills a node.
  it('an output reads its durable JetStream consumer; when its node dies holding unacknowledged events, the next node delivers from the acknowledged floor, in order', async () => {
    const { oid } = cluster.credentials;
    const nc = await connect({ servers: NATS_URL });
    const jsm = await nc.jetstreamManager();
    const names = clusterNames(cluster.schema);
    const consumer = outputConsumerName(oid, 'audit-hook');
    // The destination: records every event it is sent; while `hold` is set it answers nothing.
    const received: string[] = [];
    let hold = false;
    const held: ServerResponse[] = [];
    const receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as Envelope & { routing: { event_id: string } }).routing.event_id);
        if (hold) held.push(res);
        else res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const created = await cluster.api('a', 'POST', `/v1/outputs/${oid}`, {
        name: 'audit-hook', module: 'webhook', type: 'audit', dest_host: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`, secret_key: 'k',
      });
      expect(created.status).toBe(200);
      const owner = await waitFor(() => [...cluster.nodes.values()].find((n) => n.running && n.logs().some((l) => l.msg === 'output delivery runs on this node' && l.output === 'audit-hook')), { message: 'a node to run the output' });
      const other = [...cluster.nodes.values()].find((n) => n.running && n !== owner)!;
      // The consumer exists on the cluster's stream, filtered on the organization's audit subject.
      expect((await jsm.consumers.info(names.stream, consumer)).config.filter_subject).toBe(names.events('audit', oid));
      // Audit events, made through a node that does not run the output.
      const act = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) expect((await cluster.api(other.nodeId, 'POST', `/v1/orgs/${oid}/quota`, { quota: null })).status).toBe(200);
      };
      await act(5);
      await waitFor(() => received.length >= 6, { message: 'the first audit events delivered' });
      await waitFor(async () => (await jsm.consumers.info(names.stream, consumer)).num_ack_pending === 0, { message: 'the first events acknowledged on the consumer' });
      hold = true;
      await act(5);
      await waitFor(() => held.length > 0, { message: 'a send held by the destination' });
      const pending = (await jsm.consumers.info(names.stream, consumer)).num_ack_pending;
      expect(pending).toBeGreaterThan(0);
      owner.kill('SIGKILL');
      await owner.exited;
      hold = false;
      for (const res of held) res.destroy();
      await act(3);
      // Every audit event from the output's creation on, in the order stored, at least once; repeats only
      // of what the dead node had in flight.
      const stored = async (): Promise<string[]> => {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        try {
          await client.query(`SET search_path TO "${cluster.schema}"`);
          return (await client.query<{ id: string }>("SELECT (json::jsonb)->'routing'->>'event_id' AS id FROM events WHERE event_type = 'audit' ORDER BY seq")).rows.map((r) => r.id);
        } finally {
          await client.end();
        }
      };
      // The output's creation and the thirteen quota calls; an audit record may be stored just after its
      // call has answered, so wait for all fourteen.
      let expected: string[] = [];
      await waitFor(async () => {
        const all = await stored();
        expected = all.slice(all.indexOf(received[0]!));
        return expected.length === 14;
      }, { message: 'every audit record stored' });
      await waitFor(() => expected.every((id) => received.includes(id)), { timeoutMs: 30_000, message: `every audit event delivered after the owner died (${new Set(received).size}/${expected.length})` });
      const firsts = [...new Set(received)];
      expect(firsts).toEqual(expected.slice(0, firsts.length));
      expect(received.length - firsts.length).toBeLessThanOrEqual(pending + 1);
      const next = await waitFor(() => [...cluster.nodes.values()].find((n) => n.running && n.logs().some((l) => l.msg === 'output consumer rewound to its acknowledgement floor')), { message: 'the new owner rewound the consumer' });
      expect(next).not.toBe(owner);

      // Deleting the output deletes its consumer.
      expect((await cluster.api(other.nodeId, 'DELETE', `/v1/outputs/${oid}?name=audit-hook`)).status).toBe(200);
      await expect(jsm.consumers.info(names.stream, consumer)).rejects.toThrow(/not found/i);
    } finally {
      receiver.closeAllConnections();
      await new Promise<void>((r) => receiver.close(() => r()));
      await nc.close();
    }
  }, 90_000);
});

describe.skipIf(clusterUnavailable !== undefined)('cluster nodes on one shared data directory', () => {
  // docs/scaling.md: --data on shared storage, so that artifacts and file outputs outlive the node that
  // wrote them. Only the embedded store takes the data directory for itself (docs/operations.md).
  const cluster = new TestCluster();

  afterAll(async () => {
    await cluster.close();
  }, 60_000);

  it('both start and serve, and no lock file is made', async () => {
    const a = await cluster.start('shared-a');
    const b = await cluster.start('shared-b', {}, { dataDir: a.dataDir });
    expect(b.dataDir).toBe(a.dataDir);
    for (const node of ['shared-a', 'shared-b']) expect((await cluster.api(node, 'GET', `/v1/orgs`)).status).toBe(200);
    expect(existsSync(path.join(a.dataDir, 'picket.lock'))).toBe(false);
  }, 60_000);
});
