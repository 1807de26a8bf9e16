// Every long-running `dr` part stops after SIGTERM or SIGINT whatever it depends on is down.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { OperationEvent, OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { DingTalkGateway } from '../fakes/dingtalk-gateway.js';
import { DingTalkOpenApi } from '../fakes/dingtalk-openapi.js';
import { SlackEmulator } from '../fakes/slack-web-api.js';
import { dr, freePort, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import {
  killVolumeServers,
  recoveryClient,
  recoveryEnv,
  servedAppArgs,
  until,
} from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature, skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const problem = redisUnavailable();

/** A generous ceiling on the wait, not a timing under test: a hung part never gets there. */
const CEILING_MS = 30_000;

/**
 * For a part whose graceful stop waits on something that never answers (a hung gateway, a Redis
 * gone): the stop's deadline ends it, and a short one (DR_STOP_TIMEOUT, 10 s by default) is the
 * same path in a fifth of the time.
 */
const hangs = { DR_LOG_LEVEL: 'info', DR_STOP_TIMEOUT: '2s' };

/** A gateway that takes connections and never answers: a link that hangs rather than fails. */
async function silentGateway(
  port: number,
): Promise<{ server: Server; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createServer((s) => {
    count++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    server,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends `signal` and waits for the exit; fails naming the part if it is still running at the ceiling. */
async function stopWith(
  p: DrProcess,
  what: string,
  signal: NodeJS.Signals,
): Promise<number | null> {
  p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), CEILING_MS);
  });
  const r = await Promise.race([p.exited, hung]);
  clearTimeout(timer);
  if (r === 'hung') {
    await p.kill9();
    throw new Error(
      `${what} was still running ${CEILING_MS / 1000} s after ${signal}:\n${p.output().slice(-2000)}`,
    );
  }
  return r;
}

describe.skipIf(missingFeature(problem, 'bounded-stop.test.ts'))(
  'bounded stop: every part exits after a signal, whatever is down',
  { timeout: 180_000 },
  () => {
    let t: TestHome;
    let redis: TestRedis | undefined;

    beforeEach(async (ctx: TestContext) => {
      if (problem) skipBecause(ctx, problem);
      t = await testHome();
    });

    afterEach(async () => {
      await stopAll();
      await killVolumeServers(t?.dir);
      await redis?.stop().catch(() => undefined); // already stopped by the test
      redis = undefined;
      await t?.cleanup();
    });

    async function withApp(name = 'web'): Promise<void> {
      const image = join(t.dir, `${name}.img`);
      await writeFile(image, Buffer.alloc(256 * 1024, 7));
      const r = await dr(['--home', t.home, 'app', 'add', name, '--volume', `data=${image}`], {
        DR_LOG_LEVEL: 'silent',
      });
      expect(r.code).toBe(0);
    }

    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`dr worker stops on ${signal} with Redis down`, async () => {
        redis = await startRedis();
        const { env } = recoveryEnv(t.home, redis.url);
        const w = startDr(['worker'], env);
        await w.waitFor(/worker ready/);
        await redis.kill9();
        expect(await stopWith(w, 'dr worker', signal)).toBe(0);
      });

      it(`dr serve stops on ${signal} with Redis down`, async () => {
        redis = await startRedis();
        const { env } = recoveryEnv(t.home, redis.url);
        const s = startDr(['serve', '--listen', `127.0.0.1:${await freePort()}`], {
          ...env,
          SLACK_BOT_TOKEN: '',
          SLACK_APP_TOKEN: '',
          DINGTALK_CLIENT_ID: '',
        });
        await s.waitFor(/DingTalk: off/, CEILING_MS);
        await redis.kill9();
        expect(await stopWith(s, 'dr serve', signal)).toBe(0);
        expect(s.output()).toContain('stopped');
      });
    }

    it('dr worker stops mid-drill with Redis down; another worker finishes the drill once Redis is back', async () => {
      const persist = await mkdtemp(join(tmpdir(), 'lifeboat-redis-'));
      redis = await startRedis({ persistDir: persist });
      const { env, prefix } = recoveryEnv(t.home, redis.url);
      const { conn, client } = recoveryClient(redis.url, prefix);
      conn.on('error', () => undefined); // Redis goes away under it; commands wait for its return
      try {
        await t.startGateway();
        const image = join(t.dir, 'web.img');
        const data = Buffer.alloc(256 * 1024);
        data.write(`lifeboat-marker-${randomBytes(4).toString('hex')}\n`);
        await writeFile(image, data);
        // The recovered server answers only after 8 s: the drill is in its health check then.
        const args = servedAppArgs({
          name: 'web',
          image,
          port: await freePort(),
          dir: t.dir,
          delayMs: 8000,
        });
        expect((await dr(['--home', t.home, ...args], { DR_LOG_LEVEL: 'silent' })).code).toBe(0);
        expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], env)).code).toBe(0);
        const a = startDr(['worker', '--lock-duration', '2s'], { ...env, DR_LOG_LEVEL: 'info' });
        await a.waitFor(/worker ready/);
        const e = await client.enqueue('drill', {
          app: 'web',
          requestedBy: 'test:stop',
          keepMs: 1000,
        });
        await until('the drill to launch its server', async () => {
          const all = await conn.xrange(client.keys.events, '-', '+');
          return all.some(([, f]) => f.includes(e.opId) && f.includes('launched'))
            ? true
            : undefined;
        });
        await redis.kill9();
        expect(await stopWith(a, 'dr worker', 'SIGTERM')).toBe(0);
        expect(a.output()).toContain('running jobs are left for another worker');
        await redis.restart();
        const b = startDr(['worker', '--lock-duration', '2s'], env);
        await b.waitFor(/worker ready/, CEILING_MS);
        let end: OperationEvent | undefined;
        for await (const x of client.follow(e, AbortSignal.timeout(90_000))) {
          if (x.type === 'finished' && x.job === 'drill') end = x;
        }
        expect(end?.error).toBeUndefined();
        const result = end?.result as OperationResult | undefined;
        expect(result?.resumes).toBeGreaterThanOrEqual(1);
        expect(await stopWith(b, 'dr worker', 'SIGTERM')).toBe(0);
      } finally {
        await client.close();
        conn.disconnect();
        await rm(persist, { recursive: true, force: true });
      }
    });

    it('dr gateway stops with the Redis it publishes to down', async () => {
      redis = await startRedis();
      const { env } = recoveryEnv(t.home, redis.url);
      const g = startDr(['gateway'], env);
      await g.waitFor(/publishing replication state/);
      await redis.kill9();
      expect(await stopWith(g, 'dr gateway', 'SIGTERM')).toBe(0);
    });

    it('dr agent stops with its gateway down', async () => {
      await withApp();
      const a = startDr(['agent', '--app', 'web', '--interval', '1s'], {
        DR_HOME: t.home,
        DR_LOG_LEVEL: 'info',
      });
      await a.waitFor(/gateway|unreachable|ECONNREFUSED|retry/i);
      expect(await stopWith(a, 'dr agent', 'SIGTERM')).toBe(0);
    });

    it('dr agent stops while its gateway hangs on a request', async () => {
      await withApp();
      const port = Number((await t.config()).gateway.address.split(':').pop());
      const silent = await silentGateway(port);
      try {
        const a = startDr(['agent', '--app', 'web'], { DR_HOME: t.home, ...hangs });
        await waitFor(
          'the agent to connect to the silent gateway',
          () => silent.connections() > 0,
          CEILING_MS,
        );
        expect(await stopWith(a, 'dr agent', 'SIGTERM')).toBe(0);
      } finally {
        await silent.close();
      }
    });

    it('dr warm stops while its gateway hangs on a request', async () => {
      await withApp();
      const port = Number((await t.config()).gateway.address.split(':').pop());
      const silent = await silentGateway(port);
      try {
        const w = startDr(['warm'], { DR_HOME: t.home, ...hangs });
        await waitFor(
          'dr warm to connect to the silent gateway',
          () => silent.connections() > 0,
          CEILING_MS,
        );
        expect(await stopWith(w, 'dr warm', 'SIGINT')).toBe(0);
      } finally {
        await silent.close();
      }
    });

    it('dr serve stops with Redis, Slack and DingTalk all gone', async () => {
      redis = await startRedis();
      const slack = new SlackEmulator();
      await slack.start();
      const ding = new DingTalkGateway();
      await ding.start();
      const openapi = new DingTalkOpenApi(ding.clientId, ding.clientSecret);
      await openapi.start();
      const { env } = recoveryEnv(t.home, redis.url);
      const s = startDr(['serve', '--listen', `127.0.0.1:${await freePort()}`], {
        ...env,
        ...hangs,
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: slack.signingSecret,
        SLACK_APP_TOKEN: '',
        SLACK_API_URL: slack.apiUrl,
        DINGTALK_CLIENT_ID: ding.clientId,
        DINGTALK_CLIENT_SECRET: ding.clientSecret,
        DINGTALK_API_URL: openapi.url,
        DINGTALK_GATEWAY_URL: ding.openUrl,
      });
      try {
        await s.waitFor(/DingTalk: on/, CEILING_MS);
        await waitFor('the DingTalk stream', () => ding.connections === 1, CEILING_MS);
      } finally {
        await slack.stop();
        await ding.stop();
        await openapi.stop();
      }
      await redis.kill9();
      expect(await stopWith(s, 'dr serve', 'SIGTERM')).toBe(0);
    });

    it('dr warm stops with its gateway down', async () => {
      await withApp();
      const w = startDr(['warm', '--every', '1s'], { DR_HOME: t.home, DR_LOG_LEVEL: 'info' });
      await w.waitFor(/dr warm: web:/);
      expect(await stopWith(w, 'dr warm', 'SIGTERM')).toBe(0);
    });

    it('dr up stops with the Redis of REDIS_URL down', async () => {
      redis = await startRedis();
      const p = startDr(['up', '--listen', `127.0.0.1:${await freePort()}`, '--no-console'], {
        DR_HOME: t.home,
        REDIS_URL: redis.url,
        DR_GATEWAY: '',
        DR_LOG_LEVEL: 'info',
      });
      await p.waitFor(/Ctrl-C stops everything/, 60_000);
      await redis.kill9();
      expect(await stopWith(p, 'dr up', 'SIGTERM')).toBe(0);
      expect(p.output()).toContain('nothing left running');
      // Each part stopped by itself, in-flight work left for the next start; none had to be killed.
      expect(p.output()).not.toContain('did not stop in time');
    });
  },
);
