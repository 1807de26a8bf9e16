import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { freePort, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const script = fileURLToPath(new URL('../../scripts/healthcheck.mjs', import.meta.url));

/** Runs the container health check as Docker would; at most 15 s. */
function check(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('container health checks (scripts/healthcheck.mjs)', () => {
  let redis: TestRedis | undefined;
  let t: TestHome | undefined;
  afterEach(async () => {
    await stopAll();
    await redis?.stop();
    redis = undefined;
    await t?.cleanup();
    t = undefined;
  });

  it('http: healthy on 2xx, unhealthy on 5xx or nothing listening', async () => {
    let status = 200;
    const server = createServer((_req, res) => res.writeHead(status).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/healthz`;
    try {
      expect(await check(['http', url])).toMatchObject({ code: 0 });
      status = 503;
      const sick = await check(['http', url]);
      expect(sick.code).toBe(1);
      expect(sick.out).toContain('answered 503');
    } finally {
      server.close();
    }
    const gone = await check(['http', url]);
    expect(gone.code).toBe(1);
    expect(gone.out).toContain('ECONNREFUSED');
  });

  it('tcp: healthy while something accepts connections', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const at = `127.0.0.1:${(server.address() as { port: number }).port}`;
    expect((await check(['tcp', at])).code).toBe(0);
    server.close();
    const closed = await check(['tcp', `127.0.0.1:${await freePort()}`]);
    expect(closed.code).toBe(1);
    expect(closed.out).toContain('ECONNREFUSED');
    expect((await check(['tcp', 'nonsense'])).out).toContain('is not HOST:PORT');
  });

  it("gateway: a mutual-TLS handshake with the home's agent certificate, which the gateway does not log as refused", async () => {
    t = await testHome();
    const port = await freePort();
    const gw = startDr(['gateway', '--listen', `127.0.0.1:${port}`], {
      DR_HOME: t.home,
      DR_LOG_LEVEL: 'info',
    });
    await gw.waitFor(/gateway listening/);
    const env = { DR_HOME: t.home };
    for (let i = 0; i < 3; i++) {
      const r = await check(['gateway', `127.0.0.1:${port}`], env);
      expect(r.out).toContain('completed a mutual-TLS handshake');
      expect(r.code).toBe(0);
    }
    // A bare TCP probe is what logged a warning every 10 s; the handshake probe logs nothing.
    const tcpProbe = await check(['tcp', `127.0.0.1:${port}`]);
    expect(tcpProbe.code).toBe(0);
    await gw.waitFor(/TLS handshake refused/);
    expect(gw.output().match(/TLS handshake refused/g)).toHaveLength(1);
    const noCerts = await check(['gateway', `127.0.0.1:${port}`], { DR_HOME: '/no/such/home' });
    expect(noCerts.code).toBe(1);
    expect(noCerts.out).toContain("cannot read the home's certificates in /no/such/home/tls");
    await gw.stop();
    const down = await check(['gateway', `127.0.0.1:${port}`], env);
    expect(down.code).toBe(1);
    expect(down.out).toContain('ECONNREFUSED');
  });

  it('worker: healthy only while a real dr worker is connected to the queue', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    t = await testHome();
    const env = { REDIS_URL: redis.url, DR_HOME: t.home };
    const none = await check(['worker'], env);
    expect(none.code).toBe(1);
    expect(none.out).toContain('0 recovery worker(s)');
    const worker = startDr(['worker'], env);
    await worker.waitFor(/worker ready/);
    const ready = await check(['worker'], env);
    expect(ready.out).toContain('1 recovery worker(s) connected');
    expect(ready.code).toBe(0);
    await worker.stop();
    const down = await check(['worker'], { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(down.code).toBe(1);
  });

  it('names the modes when given an unknown one', async () => {
    const r = await check(['ping']);
    expect(r.code).toBe(1);
    expect(r.out).toContain('use http URL, tcp HOST:PORT, gateway HOST:PORT or worker');
  });
});
