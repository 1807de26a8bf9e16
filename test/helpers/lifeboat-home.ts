import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../cli/main.js';
import { type LoadedConfig, readConfig, updateConfig } from '../../core/config.js';
import { homePaths } from '../../core/home.js';
import { loadKeyEncryptionKey } from '../../replicator/crypto/key-encryption-key.js';
import { BlockStore } from '../../replicator/gateway/block-store.js';
import { createGateway, type Gateway } from '../../replicator/gateway/gateway-server.js';
import { unmountStale } from '../../replicator/recovery/fuse-mount.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { tlsClientOptions, tlsServerOptions } from '../../replicator/transport/tls-options.js';

/** A free loopback port (closed again before it is returned). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs `dr …` in this process against a home; stdout and stderr are captured. */
export async function dr(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  const saved = { ...process.env };
  Object.assign(process.env, env);
  process.stdout.write = ((c: string | Uint8Array) => {
    out.push(String(c));
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => {
    err.push(String(c));
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await run(['node', 'dr', ...args]);
    return { code, out: out.join(''), err: err.join('') };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

/** Writes `size` bytes: random 64 KiB pieces with about one in five left as zeros. */
export async function writeImage(path: string, size: number, seed = 1): Promise<Buffer> {
  const data = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let o = 0; o < size; o += 65536) {
    x = (x * 1103515245 + 12345) >>> 0;
    if (x % 5 === 0) continue; // leave a zero run
    randomBytes(Math.min(65536, size - o)).copy(data, o);
  }
  await writeFile(path, data);
  return data;
}

/**
 * Overwrites `count` random 4 KiB pieces of an image, none of them in its first `keep` bytes (a
 * marker a recovered server checks for stays whole).
 */
export async function scribble(path: string, count: number, keep = 0): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const size = (await fh.stat()).size;
    const first = Math.ceil(keep / 4096);
    const pages = size / 4096 - first;
    if (keep > 0 && pages < 1) {
      throw new Error(`scribble: ${path} has no 4 KiB page past its first ${keep} bytes`);
    }
    for (let i = 0; i < count; i++) {
      const at = (first + Math.floor(Math.random() * pages)) * 4096;
      await fh.write(randomBytes(4096), 0, 4096, at);
    }
  } finally {
    await fh.close();
  }
}

export interface TestHome {
  dir: string;
  home: string;
  config: () => Promise<LoadedConfig>;
  client: () => Promise<GatewayClient>;
  startGateway: (opts?: {
    minFreeSpace?: number;
    port?: number;
    /** Sealed record streams (default: dr.yaml's gateway.recordStreams); false: records over TLS. */
    recordStreams?: string | false;
  }) => Promise<Gateway>;
  cleanup: () => Promise<void>;
}

/** A fresh DR_HOME in a temp dir, initialised by `dr init` with a free gateway port. */
export async function testHome(): Promise<TestHome> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-test-'));
  const home = join(dir, 'home');
  const port = await freePort();
  const r = await dr(['init', '--home', home, '--gateway', `127.0.0.1:${port}`]);
  if (r.code !== 0) throw new Error(`dr init failed: ${r.err}`);
  const gateways: Gateway[] = [];
  const clients: GatewayClient[] = [];
  return {
    dir,
    home,
    config: () => readConfig(home, {}),
    client: async () => {
      const c = await readConfig(home, {});
      const client = new GatewayClient({
        address: c.gateway.address,
        tls: tlsClientOptions(homePaths(home), '127.0.0.1'),
      });
      clients.push(client);
      return client;
    },
    startGateway: async (opts = {}) => {
      const c = await readConfig(home, {});
      const store = await BlockStore.open({ dir: c.storeDir });
      const streams = opts.recordStreams ?? c.gateway.recordStreams;
      const g = await createGateway({
        store,
        listen: opts.port ? `127.0.0.1:${opts.port}` : c.gateway.listen,
        tls: tlsServerOptions(homePaths(home)),
        retention: c.retention,
        minFreeSpace: opts.minFreeSpace ?? 0,
        ...(streams !== undefined ? { recordStreams: streams } : {}),
      });
      gateways.push(g);
      return g;
    },
    cleanup: async () => {
      for (const c of clients) c.close();
      for (const g of gateways) await g.close().catch(() => undefined); // may be closed by the test already
      // A worker killed while it served an instant recovery leaves its FUSE mount: rm would meet EBUSY.
      await unmountStale(dir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function kek(home: string) {
  return loadKeyEncryptionKey(homePaths(home).kek);
}

export { updateConfig };
