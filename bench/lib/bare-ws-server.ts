// Baseline for the connections benchmark: a bare `ws` server with nothing but the same heartbeat
// (a ping every PING_MS). Prints "ready <port>"; answers "mem" on stdin with its memory and client count.
import { createInterface } from 'node:readline';
import { WebSocketServer } from 'ws';

const pingMs = Number(process.env.PING_MS ?? 5000);
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', () => undefined);
  ws.on('error', () => undefined);
});
const timer = setInterval(() => {
  for (const ws of wss.clients) ws.ping();
}, pingMs);
wss.on('listening', () => {
  const { port } = wss.address() as { port: number };
  process.stdout.write(`ready ${port}\n`);
});
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'mem') {
    const m = process.memoryUsage();
    process.stdout.write(JSON.stringify({ rss: m.rss, heap_used: m.heapUsed, clients: wss.clients.size }) + '\n');
  } else if (line.trim() === 'exit') {
    clearInterval(timer);
    wss.close();
    process.exit(0);
  }
});
