import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** How the link behaves now; every field can change while connections are open. */
export interface LinkFaults {
  /** Added one-way delay per chunk, ms. */
  latencyMs: number;
  /** Up to this much more delay, drawn per chunk (order is kept, as TCP would). */
  jitterMs: number;
  /** Bytes per second in each direction; 0 for no cap. */
  bandwidth: number;
  /** Answers stop: what the gateway sends back waits unread, so requests land but acknowledgements never arrive. */
  stalled: boolean;
  /** Nothing passes either way and new connections get no answer from the far side. */
  partitioned: boolean;
}

const calm: LinkFaults = {
  latencyMs: 0,
  jitterMs: 0,
  bandwidth: 0,
  stalled: false,
  partitioned: false,
};

export interface FaultProxyOptions {
  /** Where connections go: `host:port` of the gateway. */
  target: string;
  /** Draws jitter; pass a seeded generator so a run replays. */
  random?: () => number;
}

/** Bytes and connections the proxy moved, for the report. */
export interface ProxyCounters {
  connections: number;
  resets: number;
  bytesUp: number;
  bytesDown: number;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
}

/**
 * A TCP proxy on loopback that can add latency and jitter, cap bandwidth,
 * stall reads, partition the link for a while, and drop or reset every open
 * connection. TLS passes through untouched (it is end to end), so the agent
 * is pointed at the proxy with DR_GATEWAY and nothing else changes.
 */
export class FaultProxy {
  faults: LinkFaults = { ...calm };
  readonly counters: ProxyCounters = { connections: 0, resets: 0, bytesUp: 0, bytesDown: 0 };
  private readonly pairs = new Set<Pair>();
  private readonly random: () => number;
  private healed: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    private readonly opts: FaultProxyOptions,
  ) {
    this.random = opts.random ?? Math.random;
  }

  /** Listens on 127.0.0.1 (port 0 for any free one). */
  static async start(opts: FaultProxyOptions, port = 0): Promise<FaultProxy> {
    const server = createServer();
    const proxy = new FaultProxy(server, opts);
    server.on('connection', (s) => proxy.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get address(): string {
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new Error('fault proxy is not listening');
    return `127.0.0.1:${a.port}`;
  }

  /** Changes some faults; the rest stay as they are. Ending a stall or partition lets data flow again. */
  set(change: Partial<LinkFaults>): void {
    this.faults = { ...this.faults, ...change };
    for (const wake of this.healed.splice(0)) wake(); // each waiter re-checks its own direction
  }

  /** Back to a clean link. */
  heal(): void {
    this.set({ ...calm });
  }

  /** Sends a TCP RST on every open connection (both sides see ECONNRESET). */
  resetAll(): number {
    let n = 0;
    for (const p of [...this.pairs]) {
      p.client.resetAndDestroy();
      p.upstream?.resetAndDestroy();
      this.pairs.delete(p);
      n++;
    }
    this.counters.resets += n;
    return n;
  }

  /** Closes every open connection cleanly (FIN), as a middlebox dropping idle flows would. */
  dropAll(): number {
    let n = 0;
    for (const p of [...this.pairs]) {
      p.client.destroy();
      p.upstream?.destroy();
      this.pairs.delete(p);
      n++;
    }
    return n;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    this.faults = { ...calm };
    this.resetAll();
    for (const wake of this.healed.splice(0)) wake();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private blocked(direction?: 'bytesUp' | 'bytesDown'): boolean {
    return this.faults.partitioned || (direction === 'bytesDown' && this.faults.stalled);
  }

  /** Resolves once data may pass in that direction (new connections: once the link is not partitioned). */
  private whenFlowing(direction?: 'bytesUp' | 'bytesDown'): Promise<void> {
    if (!this.blocked(direction)) return Promise.resolve();
    return new Promise((resolve) => {
      const wait = () => (this.blocked(direction) ? this.healed.push(wait) : resolve());
      this.healed.push(wait);
    });
  }

  private accept(client: Socket): void {
    this.counters.connections++;
    const pair: Pair = { client, upstream: undefined };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', end); // a reset from either side ends the pair; the peer sees it too
    client.on('close', end);
    client.pause();
    // A partitioned link: the connection is accepted here but the far side never hears of it.
    void this.whenFlowing().then(() => {
      if (client.destroyed) return;
      const [host, port] = splitHostPort(this.opts.target);
      const upstream = createConnection({ host, port });
      pair.upstream = upstream;
      upstream.on('error', end);
      upstream.on('close', end);
      upstream.once('connect', () => {
        this.pump(client, upstream, 'bytesUp');
        this.pump(upstream, client, 'bytesDown');
      });
    });
  }

  /** Moves chunks from one side to the other, one at a time, applying the faults of the moment. */
  private pump(from: Socket, to: Socket, counter: 'bytesUp' | 'bytesDown'): void {
    let busy = Promise.resolve();
    let nextFree = 0; // when the capped link is free for the next chunk
    from.on('data', (chunk: Buffer) => {
      from.pause();
      busy = busy.then(async () => {
        await this.whenFlowing(counter);
        const { latencyMs, jitterMs, bandwidth } = this.faults;
        let wait = latencyMs + jitterMs * this.random();
        if (bandwidth > 0) {
          const now = performance.now();
          const start = Math.max(now, nextFree);
          nextFree = start + (chunk.length / bandwidth) * 1000;
          wait += nextFree - now;
        }
        if (wait > 0) await sleep(wait);
        await this.whenFlowing(counter); // a partition that began while the chunk waited holds it
        if (to.destroyed) return;
        this.counters[counter] += chunk.length;
        if (!to.write(chunk)) await new Promise((r) => to.once('drain', r));
        if (!from.destroyed) from.resume();
      });
    });
    from.on('end', () => {
      void busy.then(() => to.end());
    });
    from.resume();
  }
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}
