/** A loopback TCP proxy in front of the gateway that can hold or cut chosen connections midway. */
import { createConnection, createServer, type Socket } from 'node:net';

export interface ProxyPlan {
  /** Cut connection `index` (both ways) once this many bytes went towards the client; undefined: never. */
  cutAfter?: (index: number) => number | undefined;
  /**
   * Hold connection `index`'s bytes towards the client once `after` bytes went through, until
   * `release()` says so (checked as other connections carry bytes).
   */
  hold?: (index: number) => { after: number; release: () => boolean } | undefined;
}

export interface TcpProxy {
  port: number;
  /** Bytes each connection carried towards the client, by connection index. */
  downstream: number[];
  /** Connections cut by the plan. */
  cuts: number;
  /** Whether a held connection was released only after others had carried bytes meanwhile. */
  heldWhileOthersRan: boolean;
  close(): Promise<void>;
}

/** Forwards 127.0.0.1:<port> to `target` (HOST:PORT), applying `plan`. */
export async function startTcpProxy(target: string, plan: ProxyPlan = {}): Promise<TcpProxy> {
  const [host, port] = [target.replace(/:\d+$/, ''), Number(target.split(':').pop())];
  const sockets = new Set<Socket>();
  const held: Array<() => void> = [];
  const proxy: TcpProxy = {
    port: 0,
    downstream: [],
    cuts: 0,
    heldWhileOthersRan: false,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const recheckHeld = () => {
    for (const f of held.splice(0)) f();
  };
  const server = createServer((client) => {
    const index = proxy.downstream.length;
    proxy.downstream.push(0);
    client.on('close', () => {
      counters.delete(index);
      recheckHeld();
    });
    const upstream = createConnection({ host, port });
    sockets.add(client);
    sockets.add(upstream);
    const cutAt = plan.cutAfter?.(index);
    const hold = plan.hold?.(index);
    let holding = false;
    let wasHeld = false; // held once only
    let othersWhileHeld = 0;
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    // The gateway ended its answer: what it sent still reaches the client before this side ends
    // (destroying at once dropped bytes the client had not yet taken, a cut no plan asked for).
    let upstreamDone = false;
    upstream.on('close', () => {
      upstreamDone = true;
      if (!holding) client.end();
    });
    client.pipe(upstream);
    const pending: Buffer[] = [];
    const forward = (chunk: Buffer) => {
      if (cutAt !== undefined && (proxy.downstream[index] as number) + chunk.length >= cutAt) {
        proxy.cuts++;
        client.write(chunk.subarray(0, Math.max(0, cutAt - (proxy.downstream[index] as number))));
        end();
        return;
      }
      proxy.downstream[index] = (proxy.downstream[index] as number) + chunk.length;
      client.write(chunk);
    };
    const tryRelease = () => {
      if (!holding) return;
      // Released when the plan says so (checked whenever another connection carries bytes).
      if (!hold?.release()) {
        held.push(tryRelease);
        return;
      }
      holding = false;
      proxy.heldWhileOthersRan ||= othersWhileHeld > 0;
      for (const c of pending.splice(0)) forward(c);
      if (upstreamDone) client.end();
      else upstream.resume();
    };
    upstream.on('data', (chunk: Buffer) => {
      if (!holding && !wasHeld && hold && (proxy.downstream[index] as number) >= hold.after) {
        holding = true;
        wasHeld = true;
        held.push(tryRelease);
      }
      if (holding) {
        pending.push(chunk);
        upstream.pause();
        return;
      }
      forward(chunk);
      // Bytes on another connection may release a held one.
      othersWhileHeldBump(index);
      recheckHeld();
    });
    counters.set(index, () => {
      if (holding) othersWhileHeld++;
    });
  });
  const counters = new Map<number, () => void>();
  const othersWhileHeldBump = (from: number) => {
    for (const [i, bump] of counters) if (i !== from) bump();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as { port: number }).port;
  return proxy;
}
