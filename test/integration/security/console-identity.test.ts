// Probe 8 of issue 15: the console acts as the operating-system user, so one person cannot meet
// the two-person rule alone; `--as` only in the demo home or with dr.yaml's opt-in.
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestHome, testHome, updateConfig } from '../../helpers/lifeboat-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';

const bin = fileURLToPath(new URL('../../../bin/dr.js', import.meta.url));
const me = userInfo().username.toLowerCase();

/** `dr chat` fed one line from a pipe: its exit code and output. */
function chat(
  args: string[],
  line: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'chat', ...args], {
      env: { ...process.env, DR_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(`${line}\n`);
  });
}

describe.skipIf(missingFeature(redisUnavailable(), 'security/console-identity.test.ts'))(
  'security: the console acts as the operating-system user who runs it',
  () => {
    let redis: TestRedis;
    let t: TestHome;
    let env: NodeJS.ProcessEnv;

    beforeAll(async () => {
      redis = await startRedis();
      t = await testHome();
      env = { DR_HOME: t.home, REDIS_URL: redis.url, DR_REDIS_PREFIX: 'ci:' };
      await updateConfig(t.home, (doc) => {
        for (const name of ['alice', 'bob'])
          doc.setIn(['people', name], { ids: [`console:${name}`], groups: ['sre-oncall'] });
        doc.setIn(['apps', 'web'], {
          tier: 'prod',
          volumes: [{ name: 'data', path: join(t.dir, 'web.img') }],
        });
      });
    });

    afterAll(async () => {
      await redis?.stop();
      await t?.cleanup();
    });

    let approval = '';

    it('probe 8: one person cannot approve as two names; --as is refused with the remedy', async () => {
      const asked = await chat([], 'failover web', env);
      expect(asked.out).toContain(`Lifeboat console as ${me} (console:${me}).`);
      approval = /approve with `approve (A-\d+)`/.exec(asked.out)?.[1] ?? '';
      expect(approval, asked.out).not.toBe('');
      for (const as of ['alice', 'bob']) {
        const r = await chat(['--as', as], `approve ${approval}`, env);
        expect(r.code).toBe(2);
        expect(r.out).toContain(
          `--as ${as} is refused: the console acts as the operating-system user who runs it (console:${me})`,
        );
        expect(r.out).toContain('console: { allowAs: true }');
        expect(r.out).not.toContain('Approved');
      }
      // Nor by switching inside the console: `as <person>` is refused where --as is.
      const switched = await chat([], `as alice\napprove ${approval}`, env);
      expect(switched.out).toContain('Switching person is refused');
      expect(switched.out).toContain('You asked for this failover');
      expect(switched.out).not.toContain('Approved');
      // As oneself, the requester, it does not count either.
      const self = await chat([], `approve ${approval}`, env);
      expect(self.out).toContain('You asked for this failover');
      // Naming oneself is no impersonation.
      const named = await chat(['--as', me], 'status', env);
      expect(named.code).toBe(0);
      expect(named.out).not.toContain('acting as');
    });

    it("with dr.yaml's console.allowAs, --as acts as that person and says so", async () => {
      await updateConfig(t.home, (doc) => doc.setIn(['console', 'allowAs'], true));
      const r = await chat(['--as', 'alice'], `approve ${approval}`, env);
      expect(r.code).toBe(0);
      expect(r.out).toContain('dr chat: acting as console:alice (--as, allowed by console.allowAs');
      expect(r.out).toContain(`Approved ${approval}: 1 of 2`);
    });

    it('in the demo home (demo-shop and DR_HOME/demo made by dr up --demo), --as works and says why', async () => {
      await updateConfig(t.home, (doc) => {
        doc.setIn(['console', 'allowAs'], false);
        doc.setIn(['apps', 'demo-shop'], {
          volumes: [{ name: 'data', path: join(t.dir, 'shop.img') }],
        });
      });
      const before = await chat(['--as', 'bob'], 'status', env);
      expect(before.code).toBe(2); // the app alone does not make a demo home
      await mkdir(join(t.home, 'demo'), { recursive: true });
      const r = await chat(['--as', 'bob'], 'status', env);
      expect(r.code).toBe(0);
      expect(r.out).toContain(
        `dr chat: acting as console:bob (--as is allowed in the demo home only; in any other home the console acts as your login name, console:${me})`,
      );
    });
  },
);
