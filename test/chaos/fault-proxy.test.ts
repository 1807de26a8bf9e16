import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from './fault-proxy.js';
import { FAULT_KINDS, faultSchedule, seededRandom } from './fault-schedule.js';

/** An echo server on loopback that counts the bytes it received. */
async function echoServer(): Promise<{ server: Server; address: string; received: () => number }> {
  let received = 0;
  const server = createServer((s) => {
    s.on('data', (c: Buffer) => {
      received += c.length;
      s.write(c);
    });
    s.on('error', () => undefined); // a reset from the proxy ends the echo; nothing to keep
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return { server, address: `127.0.0.1:${port}`, received: () => received };
}

function dial(address: string): Promise<Socket> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = connect({ host: host as string, port: Number(port) }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Collects what comes back until `n` bytes arrived, the socket ends, or `ms` passes. */
function collect(s: Socket, n: number, ms: number): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const done = (error?: string) => {
      clearTimeout(timer);
      s.removeAllListeners('data');
      resolve({ data: Buffer.concat(parts), ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => done(), ms);
    s.on('data', (c: Buffer) => {
      parts.push(c);
      got += c.length;
      if (got >= n) done();
    });
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.once('close', () => done('closed'));
  });
}

describe('fault proxy', () => {
  const undo: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const u of undo.splice(0).reverse()) await u();
  });

  async function setup() {
    const echo = await echoServer();
    const proxy = await FaultProxy.start({ target: echo.address, random: seededRandom(1) });
    undo.push(() => new Promise((r) => echo.server.close(r)));
    undo.push(() => proxy.close());
    const client = await dial(proxy.address);
    undo.push(() => client.destroy());
    return { echo, proxy, client };
  }

  it('passes every byte unchanged and in order under latency, jitter and a bandwidth cap', async () => {
    const { proxy, client } = await setup();
    proxy.set({ latencyMs: 2, jitterMs: 10, bandwidth: 4 * 1024 * 1024 });
    const data = randomBytes(256 * 1024);
    const back = collect(client, data.length, 30_000);
    client.write(data);
    expect((await back).data.equals(data)).toBe(true);
    expect(proxy.counters.bytesUp).toBe(data.length);
    expect(proxy.counters.bytesDown).toBe(data.length);
  });

  it('resets every open connection: the client sees ECONNRESET', async () => {
    const { proxy, client } = await setup();
    const ended = collect(client, 1, 10_000);
    expect(proxy.resetAll()).toBe(1);
    expect((await ended).error).toBe('ECONNRESET');
    expect(proxy.openConnections).toBe(0);
  });

  it('holds data both ways during a partition, and delivers it after', async () => {
    const { echo, proxy, client } = await setup();
    proxy.set({ partitioned: true });
    const data = randomBytes(1000);
    client.write(data);
    const during = await collect(client, 1, 300);
    expect(during.data.length).toBe(0);
    expect(echo.received()).toBe(0);
    const after = collect(client, data.length, 10_000);
    proxy.heal();
    expect((await after).data.equals(data)).toBe(true);
  });

  it('gives a new connection no answer from the far side while partitioned', async () => {
    const echo = await echoServer();
    const proxy = await FaultProxy.start({ target: echo.address });
    undo.push(() => new Promise((r) => echo.server.close(r)));
    undo.push(() => proxy.close());
    proxy.set({ partitioned: true });
    const client = await dial(proxy.address);
    undo.push(() => client.destroy());
    client.write('hello');
    expect((await collect(client, 1, 300)).data.length).toBe(0);
    const after = collect(client, 5, 10_000);
    proxy.heal();
    expect((await after).data.toString()).toBe('hello');
  });

  it('stalls answers only: requests reach the far side, replies wait until the stall ends', async () => {
    const { echo, proxy, client } = await setup();
    proxy.set({ stalled: true });
    client.write('ping');
    for (let i = 0; i < 100 && echo.received() < 4; i++) await sleep(20);
    expect(echo.received()).toBe(4);
    expect((await collect(client, 1, 300)).data.length).toBe(0);
    const after = collect(client, 4, 10_000);
    proxy.heal();
    expect((await after).data.toString()).toBe('ping');
  });
});

describe('fault schedule', () => {
  it('replays exactly from its seed and differs for another seed', () => {
    expect(faultSchedule(7, 30)).toEqual(faultSchedule(7, 30));
    expect(faultSchedule(7, 30)).not.toEqual(faultSchedule(8, 30));
  });

  it('brings every kind once before any repeats', () => {
    const first = faultSchedule(123, FAULT_KINDS.length).map((f) => f.kind);
    expect([...first].sort()).toEqual([...FAULT_KINDS].sort());
  });
});
