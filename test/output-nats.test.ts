// The nats output against the real NATS server (127.0.0.1:4222, JetStream enabled): core NATS delivers
// every record once and in order to subjects built from the placeholders; JetStream stores every record,
// acknowledged, and a retried batch is not stored twice; a missing stream or an unreachable server rejects
// with an Error saying so. Without a reachable server the tests that need it are skipped with a message,
// except with CI=true where they fail. Authentication and reconnection run against nats-server processes
// the test starts itself (skipped when the nats-server binary is not installed).
import { spawn, spawnSync } from 'node:child_process';
import { connect, type JetStreamManager, type Msg, type NatsConnection } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { natsModule } from '../src/sinks/outputs/modules/nats.js';
import { OutputConfigError, type OutputModule, type OutputRecord } from '../src/sinks/outputs/output-module.js';
import { LossyRelay } from './harness/fleet-proxy.js';
import { ManagedProcess, freePort } from './harness/processes.js';
import { waitFor } from './harness/wait.js';

const NATS_PORT = 4222;
const NATS_URL = `nats://127.0.0.1:${NATS_PORT}`;

async function natsUnavailable(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 3000 });
    const jetstream = nc.info?.jetstream === true;
    await nc.close();
    return jetstream ? undefined : `the NATS server at ${NATS_URL} has no JetStream`;
  } catch (err) {
    return `no NATS server at ${NATS_URL} (${(err as Error).message})`;
  }
}

const unavailable = await natsUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`test/output-nats.test.ts needs NATS with JetStream: ${unavailable}`);
if (unavailable) console.warn(`skipping NATS output tests that need a server: ${unavailable} (they never skip with CI=true)`);

const haveNatsServerBinary = spawnSync('nats-server', ['--version']).status === 0;
if (!haveNatsServerBinary) console.warn('skipping NATS authentication and reconnection tests: the nats-server binary is not installed');

const unique = `${process.pid}_${Date.now()}`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function create(fields: Record<string, string | number | boolean>): OutputModule {
  const module = natsModule.create({ name: 'test-output', oid: 'org-1', fields, dataDir: '/nonexistent' });
  cleanups.push(() => module.close());
  return module;
}

function record(seq: number, sid: string | null, event_type: string, body: Record<string, unknown> = { n: seq }): OutputRecord {
  return { seq, oid: 'org-1', sid, event_type, event_time: 1_700_000_000_000 + seq, body, json: JSON.stringify(body) };
}

describe.skipIf(unavailable !== undefined)('nats output on core NATS', () => {
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
  });
  afterAll(async () => {
    await nc?.close();
  });

  it('delivers every record of a batch once, in order, by the time send resolves', async () => {
    const subject = `picket.test.${unique}.core`;
    const received: Msg[] = [];
    const sub = nc.subscribe(subject, { callback: (_err, msg) => received.push(msg) });
    cleanups.push(async () => sub.unsubscribe());
    await nc.flush();
    const out = create({ dest_host: NATS_URL, subject });
    const batch = Array.from({ length: 200 }, (_, i) => record(i + 1, 'sensor-a', 'NEW_PROCESS', { n: i + 1, text: `é ${i}` }));

    await out.send(batch);
    // The output flushed: the server has routed every message, and our PONG comes after them.
    await nc.flush();

    expect(received.map((m) => m.string())).toEqual(batch.map((r) => r.json));
    expect(out.batching).toEqual({ maxRecords: 1000, maxWaitMs: 0 });
  });

  it('send resolves only when the server has confirmed the publishes, not when they are written', async () => {
    // The relay passes everything to the server but, once held, nothing back: the server gets and routes
    // the batch, but its PONG to the output's flush never arrives.
    const relay = await LossyRelay.start(NATS_PORT);
    cleanups.push(() => relay.close());
    const subject = `picket.test.${unique}.flush`;
    const received: Msg[] = [];
    const sub = nc.subscribe(subject, { callback: (_err, msg) => received.push(msg) });
    cleanups.push(async () => sub.unsubscribe());
    await nc.flush();
    const out = create({ dest_host: `nats://127.0.0.1:${relay.port}`, subject });
    await out.send([record(1, 'sensor-a', 'NEW_PROCESS')]);

    relay.hold();
    let settled = false;
    const sending = out.send([record(2, 'sensor-a', 'NEW_PROCESS'), record(3, 'sensor-a', 'NEW_PROCESS')]).finally(() => {
      settled = true;
    });
    sending.catch(() => undefined);
    await waitFor(() => received.length === 3 && relay.heldBytes > 0, { message: 'the server to route the batch and answer the flush' });
    expect(settled).toBe(false);

    // Closing the output fails the send still waiting.
    await out.close();
    await expect(sending).rejects.toThrow(`nats nats://127.0.0.1:${relay.port}: the output is closing`);
  });

  it('replaces {oid}, {sid} and {event_type} per record; a missing sid is "none", dots and spaces become _', async () => {
    const prefix = `picket.test.${unique}.placeholders`;
    const received: Msg[] = [];
    const sub = nc.subscribe(`${prefix}.>`, { callback: (_err, msg) => received.push(msg) });
    cleanups.push(async () => sub.unsubscribe());
    await nc.flush();
    const out = create({ dest_host: NATS_URL, subject: `${prefix}.{oid}.{sid}.{event_type}` });
    const batch = [record(1, 'sensor-a', 'NEW_PROCESS'), record(2, null, 'enrollment'), record(3, 'sensor-b', 'odd.type name')];

    await out.send(batch);
    await nc.flush();

    expect(received.map((m) => [m.subject, m.string()])).toEqual([
      [`${prefix}.org-1.sensor-a.NEW_PROCESS`, batch[0]!.json],
      [`${prefix}.org-1.none.enrollment`, batch[1]!.json],
      [`${prefix}.org-1.sensor-b.odd_type_name`, batch[2]!.json],
    ]);
  });

  it('refuses subjects it cannot publish to, unknown placeholders and bad server URLs', () => {
    const attempt = (fields: Record<string, string | number | boolean>): unknown => {
      try {
        natsModule.create({ name: 'bad', oid: 'org-1', fields, dataDir: '/nonexistent' });
        return undefined;
      } catch (err) {
        return err;
      }
    };
    expect(attempt({ subject: 'a.b' })).toMatchObject({ field: 'dest_host', message: 'dest_host is required' });
    expect(attempt({ dest_host: NATS_URL })).toMatchObject({ field: 'subject', message: 'subject is required' });
    expect(attempt({ dest_host: NATS_URL, subject: 'events.>' })).toBeInstanceOf(OutputConfigError);
    expect(attempt({ dest_host: NATS_URL, subject: 'events with space' })).toMatchObject({ field: 'subject' });
    expect(attempt({ dest_host: NATS_URL, subject: 'events..x' })).toMatchObject({ field: 'subject' });
    expect(attempt({ dest_host: NATS_URL, subject: 'events.{hostname}' })).toMatchObject({ field: 'subject', message: expect.stringContaining('{hostname}') });
    expect(attempt({ dest_host: 'http://127.0.0.1:4222', subject: 'a' })).toMatchObject({ field: 'dest_host' });
    expect(attempt({ dest_host: 'nats://u:p@127.0.0.1:4222', subject: 'a' })).toMatchObject({ field: 'dest_host', message: expect.stringContaining('credentials') });
    expect(attempt({ dest_host: NATS_URL, subject: 'a', token: 't', username: 'u', password: 'p' })).toMatchObject({ field: 'token' });
    expect(attempt({ dest_host: NATS_URL, subject: 'a', username: 'u' })).toMatchObject({ field: 'password' });
    expect(attempt({ dest_host: `${NATS_URL}, nats://127.0.0.2:4222`, subject: 'a.{oid}' })).toBeUndefined();
  });
});

describe.skipIf(unavailable !== undefined)('nats output on JetStream', () => {
  const stream = `PICKET_TEST_${unique}`;
  const prefix = `picket.test.${unique}.js`;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
  });
  afterAll(async () => {
    await jsm?.streams.delete(stream);
    await nc?.close();
  });

  it('stores every record in order, acknowledged, and a retried batch is not stored twice', async () => {
    const out = create({ dest_host: NATS_URL, subject: `${prefix}.{event_type}`, is_jetstream: true });
    const batch = Array.from({ length: 50 }, (_, i) => record(i + 1, 'sensor-a', i % 2 === 0 ? 'NEW_PROCESS' : 'DNS_REQUEST'));

    await out.send(batch);
    // send resolved only after every PubAck: the stream already holds them all.
    expect((await jsm.streams.info(stream)).state.messages).toBe(batch.length);

    // The delivery loop retries whole batches; the message ids let JetStream drop the copies.
    await out.send(batch);
    expect((await jsm.streams.info(stream)).state.messages).toBe(batch.length);

    const consumer = await nc.jetstream().consumers.get(stream);
    const stored: Array<{ subject: string; data: string; msgId: string | undefined }> = [];
    for await (const m of await consumer.fetch({ max_messages: batch.length, expires: 5000 })) {
      stored.push({ subject: m.subject, data: m.string(), msgId: m.headers?.get('Nats-Msg-Id') });
      if (stored.length === batch.length) break;
    }
    expect(stored).toEqual(batch.map((r) => ({ subject: `${prefix}.${r.event_type}`, data: r.json, msgId: `org-1/test-output/${r.seq}` })));
  });

  it('send resolves only with every PubAck, not when the messages are stored', async () => {
    const relay = await LossyRelay.start(NATS_PORT);
    cleanups.push(() => relay.close());
    const out = create({ dest_host: `nats://127.0.0.1:${relay.port}`, subject: `${prefix}.acks`, is_jetstream: true });
    // Sequence numbers no other test here uses: the message ids would make JetStream drop them as copies.
    await out.send([record(1001, 'sensor-a', 'NEW_PROCESS')]);
    const before = (await jsm.streams.info(stream)).state.messages;

    relay.hold();
    let settled = false;
    const sending = out.send([record(1002, 'sensor-a', 'NEW_PROCESS'), record(1003, 'sensor-a', 'NEW_PROCESS')]).finally(() => {
      settled = true;
    });
    sending.catch(() => undefined);
    await waitFor(async () => (await jsm.streams.info(stream)).state.messages === before + 2 && relay.heldBytes > 0, { message: 'the stream to store the batch' });
    expect(settled).toBe(false);

    await out.close();
    await expect(sending).rejects.toThrow('the output is closing');
  });

  it('rejects clearly when no stream captures the subject', async () => {
    const out = create({ dest_host: NATS_URL, subject: `picket.test.${unique}.nostream.{sid}`, is_jetstream: true });

    await expect(out.send([record(1, 'sensor-a', 'NEW_PROCESS')])).rejects.toThrow(
      `nats ${NATS_URL}: no JetStream stream captures subject "picket.test.${unique}.nostream.sensor-a"`,
    );
  });
});

describe('nats output without a server', () => {
  it('rejects with a clear error when the server is unreachable, and again on the next send', async () => {
    const port = await freePort();
    const out = create({ dest_host: `nats://127.0.0.1:${port}`, subject: 'picket.unreachable' });

    await expect(out.send([record(1, 'sensor-a', 'NEW_PROCESS')])).rejects.toThrow(`nats nats://127.0.0.1:${port}: cannot connect: CONNECTION_REFUSED`);
    await expect(out.send([record(1, 'sensor-a', 'NEW_PROCESS')])).rejects.toThrow('cannot connect');
  });

  it('a closed output refuses to send', async () => {
    const out = create({ dest_host: 'nats://127.0.0.1:1', subject: 'picket.closed' });
    await out.close();
    await expect(out.send([record(1, 'sensor-a', 'NEW_PROCESS')])).rejects.toThrow('the output is closed');
  });
});

describe.skipIf(!haveNatsServerBinary)('nats output against a nats-server started by the test', () => {
  /** A nats-server on a free port, requiring `auth` when given. Stopped after the test. */
  async function startNatsServer(port: number, auth: { token: string } | { user: string; pass: string } | Record<string, never> = {}): Promise<ManagedProcess> {
    const args = 'token' in auth ? ['--auth', auth.token] : 'user' in auth ? ['--user', auth.user, '--pass', auth.pass] : [];
    const server = new ManagedProcess(spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    cleanups.push(async () => {
      server.kill();
      await server.exited;
    });
    await waitFor(
      async () => {
        if (!server.running) throw new Error(`nats-server exited\n${server.output()}`);
        const nc = await connect({ servers: `nats://127.0.0.1:${port}`, ...auth });
        await nc.close();
        return true;
      },
      { message: `nats-server on port ${port}` },
    );
    return server;
  }

  async function subscribeAll(url: string, subject: string, auth: object): Promise<string[]> {
    const received: string[] = [];
    const nc = await connect({ servers: url, ...auth });
    cleanups.push(() => nc.close());
    nc.subscribe(subject, { callback: (_err, msg) => received.push(msg.string()) });
    await nc.flush();
    return received;
  }

  it('authenticates with a token, and a wrong token rejects naming the authorization failure', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    await startNatsServer(port, { token: 'right-token' });
    const received = await subscribeAll(url, 'picket.auth', { token: 'right-token' });

    await create({ dest_host: url, subject: 'picket.auth', token: 'right-token' }).send([record(1, 's', 'A')]);
    await waitFor(() => received.length === 1, { message: 'the token-authenticated message' });
    await expect(create({ dest_host: url, subject: 'picket.auth', token: 'wrong-token' }).send([record(2, 's', 'A')])).rejects.toThrow(
      `nats ${url}: cannot connect: Authorization Violation (AUTHORIZATION_VIOLATION)`,
    );
  });

  it('authenticates with username and password', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    await startNatsServer(port, { user: 'picket', pass: 'pw-123' });
    const received = await subscribeAll(url, 'picket.userpass', { user: 'picket', pass: 'pw-123' });

    await create({ dest_host: url, subject: 'picket.userpass', username: 'picket', password: 'pw-123' }).send([record(1, 's', 'A')]);
    await waitFor(() => received.length === 1, { message: 'the password-authenticated message' });
    await expect(create({ dest_host: url, subject: 'picket.userpass', username: 'picket', password: 'wrong' }).send([record(2, 's', 'A')])).rejects.toThrow('AUTHORIZATION_VIOLATION');
  });

  it('keeps its connection across a server restart: sends fail while the server is away, then succeed again', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const first = await startNatsServer(port);
    const out = create({ dest_host: url, subject: 'picket.restart' });
    await out.send([record(1, 's', 'A')]);

    first.kill();
    await first.exited;
    await waitFor(
      () =>
        out.send([record(2, 's', 'A')]).then(
          () => false,
          (err: Error) => /disconnected from the server/.test(err.message),
        ),
      { message: 'a send to fail while the server is down' },
    );

    await startNatsServer(port);
    const received = await subscribeAll(url, 'picket.restart', {});
    await waitFor(async () => {
      await out.send([record(3, 's', 'A', { after: 'restart' })]);
      return received.includes('{"after":"restart"}');
    }, { message: 'a send after the restart to arrive' });
  });
});
