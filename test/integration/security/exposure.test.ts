// Probe 9 of issue 15: no status listener beyond loopback without a token; no Redis password
// in the environment of the processes that never use Redis (real dr serve, real dr up).
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { UpState } from '../../../core/up-state.js';
import { dr, freePort, type TestHome, testHome } from '../../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

const problem = redisUnavailable();
const TOKEN = 'a'.repeat(8) + 'b'.repeat(8) + 'c'.repeat(8);

/** The environment a running process was started with (same user: /proc/PID/environ). */
function environOf(pid: number): Record<string, string> {
  const raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
  return Object.fromEntries(
    raw
      .split('\0')
      .filter((x) => x.includes('='))
      .map((x) => [x.slice(0, x.indexOf('=')), x.slice(x.indexOf('=') + 1)]),
  );
}

describe('security: what the control plane exposes', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    t = await testHome();
  });
  afterEach(async () => {
    await stopAll();
    await redis?.stop();
    redis = undefined;
    await t?.cleanup();
  });

  it('dr serve --listen 0.0.0.0 refuses to start without DR_STATUS_TOKEN, with the remedy; starts with it', async () => {
    redis = await startRedis();
    const port = await freePort();
    const env = {
      DR_HOME: t.home,
      REDIS_URL: redis.url,
      DR_STATUS_TOKEN: '',
      SLACK_BOT_TOKEN: '',
      DINGTALK_CLIENT_ID: '',
    };
    const refused = await dr(['serve', '--listen', `0.0.0.0:${port}`], env);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain(
      `--listen 0.0.0.0:${port} is reachable beyond this machine and DR_STATUS_TOKEN is not set`,
    );
    expect(refused.err).toContain('To resolve, set DR_STATUS_TOKEN');
    expect(refused.err).toContain('or listen on 127.0.0.1');
    const served = startDr(['serve', '--listen', `0.0.0.0:${port}`], {
      ...env,
      DR_STATUS_TOKEN: TOKEN,
    });
    await served.waitFor(/serving on/, 60_000);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(served.output()).not.toContain(TOKEN);
    expect(await served.stop()).toBe(0);
  });

  it('dr up --listen 0.0.0.0 without a token is refused before anything starts', async () => {
    const r = await dr(['up', '--listen', `0.0.0.0:${await freePort()}`], {
      DR_HOME: t.home,
      REDIS_URL: '',
      DR_STATUS_TOKEN: '',
    });
    expect(r.code).toBe(2);
    expect(`${r.out}${r.err}`).toContain('is reachable beyond this machine and DR_STATUS_TOKEN');
    expect(`${r.out}${r.err}`).not.toContain('starting redis-server');
  });

  it('dr up gives the Redis password to the parts that use Redis, never to the agent', async () => {
    const image = join(t.dir, 'web.img');
    await writeFile(image, Buffer.alloc(256 * 1024, 7));
    const added = await dr(['app', 'add', 'web', '--volume', `data=${image}`], {
      DR_HOME: t.home,
      DR_LOG_LEVEL: 'silent',
    });
    expect(added.code, added.err).toBe(0);
    const up = startDr(['up', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: t.home,
      REDIS_URL: '',
      DR_GATEWAY: '',
    });
    await up.waitFor(/Ctrl-C stops everything/, 90_000);
    const state = JSON.parse(readFileSync(join(t.home, 'run', 'up.json'), 'utf8')) as UpState;
    const password = /^redis:\/\/:([^@]+)@/.exec(state.redisUrl)?.[1] ?? '';
    expect(password).not.toBe('');
    const pidOf = (name: string) => state.children.find((c) => c.name === name)?.pid ?? 0;
    // The check reads environments right: the worker, which uses Redis, has it.
    expect(environOf(pidOf('worker')).REDIS_URL).toBe(state.redisUrl);
    const agent = await waitFor('the agent in up.json', () => pidOf('agent web') || undefined);
    const agentEnv = environOf(agent);
    expect(agentEnv.REDIS_URL).toBeUndefined();
    expect(Object.values(agentEnv).some((v) => v.includes(password))).toBe(false);
    expect(agentEnv.DR_GATEWAY).toBe(state.gateway);
    expect(await up.stop()).toBe(0);
  });
});
