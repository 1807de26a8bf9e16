import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dr, freePort, type TestHome, testHome } from '../../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';

const bin = fileURLToPath(new URL('../../../bin/dr.js', import.meta.url));

/** `dr chat` fed from a pipe: its output once the input ends. */
function chat(
  args: string[],
  input: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'chat', ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(input);
  });
}

describe.skipIf(missingFeature(redisUnavailable(), 'serve-and-chat.test.ts'))(
  'dr serve and dr chat',
  () => {
    let redis: TestRedis;
    let t: TestHome;
    let env: NodeJS.ProcessEnv;

    beforeAll(async () => {
      redis = await startRedis();
      t = await testHome();
      env = { DR_HOME: t.home, REDIS_URL: redis.url, DR_REDIS_PREFIX: 'sc:' };
    });

    afterAll(async () => {
      await stopAll();
      await redis?.stop();
      await t?.cleanup();
    });

    it('serves /healthz with every surface off, saying why, and stops on SIGTERM', async () => {
      const listen = `127.0.0.1:${await freePort()}`;
      const clean = {
        SLACK_BOT_TOKEN: '',
        SLACK_APP_TOKEN: '',
        DINGTALK_CLIENT_ID: '',
        DINGTALK_CLIENT_SECRET: '',
      };
      const serve = startDr(['serve', '--listen', listen], { ...env, ...clean });
      await serve.waitFor(/DingTalk: off/, 30_000);
      expect(serve.output()).toContain(`serving on http://${listen} (/healthz)`);
      expect(serve.output()).toContain('Slack: off (SLACK_BOT_TOKEN is not set)');
      expect(serve.output()).toContain('DingTalk: off (DINGTALK_CLIENT_ID is not set)');
      expect((await fetch(`http://${listen}/healthz`)).status).toBe(200);
      expect((await fetch(`http://${listen}/slack/events`, { method: 'POST' })).status).toBe(404);
      expect(await serve.stop()).toBe(0);
      expect(serve.output()).toContain('stopped');
    });

    it('refuses a bad --listen, a port in use and half a set of credentials, naming the remedy', async () => {
      const bad = await dr(['serve', '--listen', 'nowhere'], env);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('--listen "nowhere" is not HOST:PORT');
      const half = await dr(['serve', '--listen', '127.0.0.1:0'], {
        ...env,
        DINGTALK_CLIENT_ID: 'ding-app',
        DINGTALK_CLIENT_SECRET: '',
        SLACK_BOT_TOKEN: '',
      });
      expect(half.code).toBe(2);
      expect(half.err).toContain('DINGTALK_CLIENT_SECRET is not set but its partner is');
      const noSecret = await dr(['serve', '--listen', '127.0.0.1:0'], {
        ...env,
        SLACK_BOT_TOKEN: 'xoxb-not-checked',
        SLACK_SIGNING_SECRET: '',
        SLACK_APP_TOKEN: '',
      });
      expect(noSecret.code).toBe(2);
      expect(noSecret.err).toContain('SLACK_SIGNING_SECRET');
      expect(noSecret.err).not.toContain('xoxb-not-checked');
      const unreachable = await dr(['serve', '--listen', '127.0.0.1:0'], {
        ...env,
        SLACK_BOT_TOKEN: 'xoxb-x',
        SLACK_SIGNING_SECRET: 's',
        SLACK_API_URL: `http://127.0.0.1:${await freePort()}/api/`,
        DINGTALK_CLIENT_ID: '',
      });
      expect(unreachable.code).toBe(2);
      expect(unreachable.err).toMatch(
        /cannot reach Slack's Web API at http:\/\/127\.0\.0\.1:\d+\/api\/.*To resolve, check the network/,
      );
      const listen = `127.0.0.1:${await freePort()}`;
      const first = startDr(['serve', '--listen', listen], {
        ...env,
        SLACK_BOT_TOKEN: '',
        DINGTALK_CLIENT_ID: '',
      });
      await first.waitFor(/DingTalk: off/, 30_000);
      const second = await dr(['serve', '--listen', listen], {
        ...env,
        SLACK_BOT_TOKEN: '',
        DINGTALK_CLIENT_ID: '',
      });
      expect(second.code).toBe(2);
      expect(second.err).toMatch(/cannot listen on 127\.0\.0\.1:\d+.*choose another with --listen/);
      await first.stop();
    });

    it('dr chat answers typed commands as the admin, and refuses a bad --as', async () => {
      const r = await chat([], 'help drill\nstatus\nfalover x\nexit\n', env);
      expect(r.code).toBe(0);
      const admin = (await t.config()).admin;
      expect(r.out).toContain(`Lifeboat console as ${admin} (console:${admin}).`);
      expect(r.out).toContain('drill <app> [--point P] [--keep D] [--dry-run]');
      expect(r.out).toContain('Unknown command "falover". Did you mean `failover`?');
      const bad = await chat(['--as', 'al ice;'], '', env);
      expect(bad.code).toBe(2);
      expect(bad.out).toContain('--as "al ice;" is not a person\'s name');
    });
  },
);
