// A TCP relay between sensors and a real server that can lose what the server says: hold() stops passing
// the server's bytes (acks, pings) to the sensors on every connection open at that moment, as a network
// does when the server dies with its acks still in flight. Bytes from the sensors still pass; connections
// opened later are relayed normally. When either side closes, the other is closed too.
import net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  held: boolean;
}

export class LossyRelay {
  private readonly pairs = new Set<Pair>();
  /** Server bytes not delivered because their connection was held. */
  heldBytes = 0;
  /** Connections relayed so far. */
  connections = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /** Listens on a free port of 127.0.0.1 and relays each connection to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number): Promise<LossyRelay> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const relay = new LossyRelay(server, (server.address() as net.AddressInfo).port);
    server.on('connection', (client) => relay.relay(client, targetPort));
    return relay;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** From now on, nothing the server sends on the connections open now reaches their sensors. */
  hold(): number {
    for (const p of this.pairs) p.held = true;
    return this.pairs.size;
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: net.Socket, targetPort: number): void {
    this.connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair: Pair = { client, upstream, held: false };
    this.pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (chunk: Buffer) => {
      if (!upstream.destroyed) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (pair.held) this.heldBytes += chunk.length;
      else if (!client.destroyed) client.write(chunk);
    });
    const end = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  }
}
