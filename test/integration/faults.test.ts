import { createHash } from 'node:crypto';
import { appendFile, cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../core/home.js';
import { resolveAgentSettings } from '../../replicator/agent/agent-settings.js';
import { ReplicationAgent } from '../../replicator/agent/replication-agent.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { tlsClientOptions } from '../../replicator/transport/tls-options.js';
import {
  dr,
  kek,
  scribble,
  type TestHome,
  testHome,
  writeImage,
} from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { restoreLatest } from '../helpers/restore.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

async function protect(t: TestHome, size = 2 * 1024 * 1024, volumes = ['a']): Promise<string[]> {
  const paths: string[] = [];
  const args = ['--home', t.home, 'app', 'add', 'web'];
  for (const [i, v] of volumes.entries()) {
    const p = join(t.dir, `${v}.img`);
    await writeImage(p, size, i + 10);
    paths.push(p);
    args.push('--volume', `${v}=${p}`);
  }
  const r = await dr(args);
  if (r.code !== 0) throw new Error(r.err);
  return paths;
}

async function agentFor(t: TestHome, stateName = 'agents/web'): Promise<ReplicationAgent> {
  const config = await t.config();
  return new ReplicationAgent({
    settings: {
      ...resolveAgentSettings(config, 'web', { interval: '200ms' }),
      stateDir: join(homePaths(t.home).stateDir, stateName),
      batchBytes: 256 * 1024,
    },
    client: await t.client(),
    kek: await kek(t.home),
  });
}

describe('replication under bad input and faults', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
  });
  afterEach(async () => {
    await stopAll();
    await t.cleanup();
  });

  it('backs off while the gateway is unreachable, then catches up', async () => {
    const [a] = await protect(t);
    const agent = await agentFor(t);
    const run = agent.run({ once: true });
    await sleep(1200); // several refused attempts
    await t.startGateway();
    const report = await run;
    expect(report?.point.id).toBe(1);
    const out = join(t.dir, 'r.img');
    expect((await restoreLatest(t, 'a', out)).code).toBe(0);
    expect((await readFile(out)).equals(await readFile(a as string))).toBe(true);
  });

  it('a CLI command names the unreachable gateway and how to start it', async () => {
    await protect(t);
    const r = await dr(['--home', t.home, 'points', 'web']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot reach the gateway at 127\.0\.0\.1:\d+/);
    expect(r.err).toContain('dr gateway');
  });

  it('refuses a client without a certificate or with a foreign one', async () => {
    await protect(t);
    await t.startGateway();
    const config = await t.config();
    const [host, port] = config.gateway.address.split(':');
    // No client certificate: the TLS handshake is refused.
    const own = tlsClientOptions(homePaths(t.home), '127.0.0.1');
    const noCert = await new Promise<string>((resolve) => {
      const req = request(
        { host, port: Number(port), path: '/v1/status', ca: own.ca, servername: 'localhost' },
        (res) => resolve(`answered ${res.statusCode}`),
      );
      req.on('error', (e) => resolve(String((e as NodeJS.ErrnoException).code ?? e.message)));
      req.end();
    });
    expect(noCert).not.toMatch(/answered/);
    // A certificate from another home's CA: refused too, as a clear TLS error.
    const other = await testHome();
    try {
      const foreign = new GatewayClient({
        address: config.gateway.address,
        tls: { ...tlsClientOptions(homePaths(other.home), '127.0.0.1'), ca: own.ca },
      });
      await expect(foreign.status()).rejects.toMatchObject({
        code: expect.stringMatching(/tls_invalid|gateway_unreachable/),
      });
      foreign.close();
    } finally {
      await other.cleanup();
    }
  });

  it('detects tampered ciphertext, index and segment bytes; never writes wrong bytes out', async () => {
    await protect(t, 1024 * 1024);
    const g = await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    await g.close();
    const config = await t.config();
    const segDir = join(config.storeDir, 'apps', 'web', 'segments');
    const seg = join(segDir, (await readdir(segDir)).sort()[0] as string);
    const pristine = await readFile(seg);
    // Flip one byte deep inside the first batch's ciphertext.
    const damaged = Buffer.from(pristine);
    const at = Math.floor(pristine.length / 3);
    damaged[at] = (damaged[at] as number) ^ 0x55;
    await writeFile(seg, damaged);
    await t.startGateway();
    const v = await dr(['--home', t.home, 'verify', 'web'], quiet);
    expect(v.code).toBe(1);
    expect(v.out).toMatch(/MISMATCH web\/a block \d+: .*(authenticate|MAC|malformed)/);
    const target = join(t.dir, 'out.img');
    const r = await restoreLatest(t, 'a', target);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/block \d+/);
    await expect(stat(target)).rejects.toThrow();
    expect((await readdir(t.dir)).filter((n) => n.includes('lifeboat-partial'))).toEqual([]);
  });

  it('detects a tampered point index', async () => {
    await protect(t, 1024 * 1024);
    const g = await t.startGateway();
    await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    await g.close();
    const config = await t.config();
    const idxDir = join(config.storeDir, 'apps', 'web', 'points');
    const idx = join(idxDir, (await readdir(idxDir)).find((n) => n.endsWith('.idx')) as string);
    const bytes = await readFile(idx);
    bytes[40] = (bytes[40] as number) ^ 1;
    await writeFile(idx, bytes);
    await t.startGateway();
    const v = await dr(['--home', t.home, 'verify', 'web'], quiet);
    expect(v.code).not.toBe(0);
    expect(v.err).toMatch(/point index .*1\.idx does not match its checksum/);
    expect(v.err).toContain('To resolve');
  });

  it('refuses a wrong key encryption key with the remedy', async () => {
    await protect(t, 512 * 1024);
    await t.startGateway();
    await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    const other = await testHome();
    try {
      await cp(homePaths(other.home).kek, homePaths(t.home).kek);
      const r = await dr(
        [
          '--home',
          t.home,
          'restore',
          'web',
          '--point',
          'latest',
          '--allow-fuzzy',
          '--volume',
          'a',
          '--to',
          join(t.dir, 'x.img'),
        ],
        quiet,
      );
      expect(r.code).toBe(2);
      expect(r.err).toContain('is not the one web/a was protected with');
      expect(r.err).toContain('copy keys/kek.key');
      const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
      expect(agent.code).toBe(2);
      expect(agent.err).toContain('key encryption key');
    } finally {
      await other.cleanup();
    }
  });

  it('waits while the gateway disk is full and acknowledges nothing it did not store', async () => {
    const [a] = await protect(t);
    const full = await t.startGateway({ minFreeSpace: Number.MAX_SAFE_INTEGER });
    const agent = await agentFor(t);
    const run = agent.run({ once: true });
    await sleep(1500);
    const client = await t.client();
    const [s] = await client.status('web');
    expect(s?.lastPoint).toBeNull();
    expect(s?.bytesShipped).toBe(0);
    await full.close();
    await t.startGateway({ minFreeSpace: 0 });
    const report = await run;
    expect(report?.point.id).toBe(1);
    const out = join(t.dir, 'r.img');
    await restoreLatest(t, 'a', out);
    expect((await readFile(out)).equals(await readFile(a as string))).toBe(true);
  });

  it('refuses a second agent for the same app, here and from another machine', async () => {
    await protect(t);
    await t.startGateway();
    const first = await agentFor(t);
    const controller = new AbortController();
    const running = first.run({ signal: controller.signal });
    await sleep(500);
    const second = startDr(['agent', '--app', 'web', '--once'], { DR_HOME: t.home });
    expect(await second.exited).toBe(2);
    expect(second.output()).toMatch(/another agent \(pid \d+\) is already replicating app web/);
    const elsewhere = await agentFor(t, 'elsewhere/web');
    await expect(elsewhere.run({ once: true })).rejects.toThrow(
      /already replicated by an agent on/,
    );
    controller.abort();
    await running.catch(() => undefined); // aborted on purpose
  });

  it('does not apply a batch cut off mid-upload', async () => {
    await protect(t);
    const g = await t.startGateway();
    const agent = await agentFor(t);
    await agent.start();
    const client = await t.client();
    const config = await t.config();
    const [host, port] = config.gateway.address.split(':');
    const session = await readFile(
      join(homePaths(t.home).stateDir, 'agents', 'web', 'agent.lock'),
      'utf8',
    );
    const sessionId = JSON.parse(session).sessionId as string;
    const body = Buffer.alloc(64 * 1024, 7);
    await new Promise<void>((resolve) => {
      const req = request({
        host,
        port: Number(port),
        method: 'POST',
        path: '/v1/apps/web/batches',
        headers: {
          'content-length': body.length,
          'x-lifeboat-session': sessionId,
          'content-type': 'application/octet-stream',
        },
        ...tlsClientOptions(homePaths(t.home), '127.0.0.1'),
      });
      req.on('error', () => resolve());
      req.write(body.subarray(0, 1000), () =>
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 100),
      );
    });
    await sleep(200);
    const [s] = await client.status('web');
    expect(s?.bytesShipped).toBe(0);
    const report = await agent.cycle();
    expect(report.point.id).toBe(1);
    await agent.stop();
    void g;
  });

  it('stops cycling a volume resized under a running agent, says why, and protects the new size after a restart', async () => {
    const [a] = await protect(t, 1024 * 1024);
    await t.startGateway();
    const agent = await agentFor(t);
    await agent.start();
    await agent.cycle();
    await appendFile(a as string, Buffer.alloc(64 * 1024, 1));
    await expect(agent.cycle()).rejects.toMatchObject({
      code: 'volume_resized',
      message: expect.stringContaining('restart the agent'),
    });
    await agent.stop();
    const again = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(again.code).toBe(0);
    const out = join(t.dir, 'r.img');
    await restoreLatest(t, 'a', out);
    expect((await readFile(out)).equals(await readFile(a as string))).toBe(true);
  });

  it('survives kill -9 of the gateway: the agent carries on by itself and the copy stays exact', async () => {
    const [a] = await protect(t, 16 * 1024 * 1024);
    const env = { DR_HOME: t.home };
    let gateway = startDr(['gateway'], env);
    await gateway.waitFor(/gateway listening/);
    const agent = startDr(['agent', '--app', 'web', '--interval', '300ms'], env);
    await agent.waitFor(/recovery point committed|no change since the last point/, 60_000);
    await scribble(a as string, 200);
    await gateway.kill9();
    await sleep(500);
    gateway = startDr(['gateway'], env);
    await gateway.waitFor(/gateway listening/);
    const commits = () => (agent.output().match(/recovery point committed/g) ?? []).length;
    // An agent commits a point only when something changed: keep writing while it carries on.
    for (let i = 1; i <= 2; i++) {
      const before = commits();
      await scribble(a as string, 20);
      const until = Date.now() + 30_000;
      while (commits() < before + 1 && Date.now() < until) await sleep(100);
      expect(commits(), `commit ${i} after the gateway came back`).toBeGreaterThanOrEqual(
        before + 1,
      );
    }
    // That commit's cycle may have begun before the last write: wait for a cycle that finds
    // nothing left to ship, so the newest point is the source as it is now.
    const caughtUp = () => {
      const said = agent.output();
      return (
        said.lastIndexOf('no change since the last point') >
        said.lastIndexOf('recovery point committed')
      );
    };
    const settled = Date.now() + 30_000;
    while (!caughtUp() && Date.now() < settled) await sleep(100);
    expect(caughtUp(), 'a cycle after the last commit found no change').toBe(true);
    expect(agent.output()).toContain('session reopened');
    expect(await agent.stop()).toBe(0);
    const out = join(t.dir, 'r.img');
    expect((await restoreLatest(t, 'a', out)).code).toBe(0);
    expect(sha(await readFile(out))).toBe(sha(await readFile(a as string)));
    expect((await dr(['--home', t.home, 'verify', 'web'], quiet)).code).toBe(0);
    await gateway.stop();
  });

  it('after kill -9 of the agent mid-sync, resumes without resending what the gateway acknowledged', async () => {
    const size = 256 * 1024 * 1024;
    const [a] = await protect(t, size);
    await t.startGateway();
    const client = await t.client();
    const agent = startDr(['agent', '--app', 'web', '--once'], {
      DR_HOME: t.home,
      DR_LOG_LEVEL: 'warn',
    });
    let shipped = 0;
    const until = Date.now() + 60_000;
    while (Date.now() < until) {
      const [s] = await client.status('web');
      shipped = s?.bytesShipped ?? 0;
      expect(s?.lastPoint ?? null).toBeNull(); // the kill must land mid-sync
      if (shipped >= 24 * 1024 * 1024) break;
      await sleep(10);
    }
    await agent.kill9();
    await sleep(500); // batches fully received before the kill still land
    const [after] = await client.status('web');
    const acknowledged = after?.bytesShipped ?? 0;
    expect(acknowledged).toBeGreaterThanOrEqual(24 * 1024 * 1024);
    const resumed = await dr(
      ['--home', t.home, 'agent', '--app', 'web', '--once', '--json'],
      quiet,
    );
    expect(resumed.code).toBe(0);
    const report = JSON.parse(resumed.out);
    const [final] = await client.status('web');
    expect((final?.bytesShipped ?? 0) - acknowledged).toBe(report.bytesSent);
    // Only non-zero blocks travel; had anything acknowledged been sent again, the total would pass them by 24 MiB or more.
    const image = await readFile(a as string);
    let dataBytes = 0;
    const zero = Buffer.alloc(65536);
    for (let o = 0; o < size; o += 65536)
      if (!image.subarray(o, o + 65536).equals(zero)) dataBytes += 65536;
    expect(report.bytesSent + acknowledged).toBeLessThan(dataBytes * 1.01 + 1024 * 1024);
    expect(report.bytesSent + acknowledged).toBeGreaterThanOrEqual(dataBytes);
    const out = join(t.dir, 'r.img');
    expect((await restoreLatest(t, 'a', out)).code).toBe(0);
    expect(sha(await readFile(out))).toBe(sha(await readFile(a as string)));
  });
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
