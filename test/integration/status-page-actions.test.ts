import type { Redis } from 'ioredis';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer, type HttpServer } from '../../cli/http-server.js';
import { SESSION_COOKIE } from '../../cli/status-page/page-actions.js';
import { createServeRoutes } from '../../cli/status-page/serve-routes.js';
import { connectRedis } from '../../core/redis.js';
import { ApprovalStore } from '../../engine/approval-store.js';
import type { Engine } from '../../engine/create-engine.js';
import { chromiumUnavailable, launchChromium } from '../helpers/chromium.js';
import {
  command,
  type EngineHome,
  engineHome,
  PEOPLE_YAML,
  startEngine,
  testPrefix,
} from '../helpers/engine-home.js';
import { dr } from '../helpers/lifeboat-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

const missing = redisUnavailable() ?? chromiumUnavailable();
if (missing) process.stderr.write(`skipped status page action tests: ${missing}\n`);

// sam and tom are on call and may use the console (so the page); alice owns web but is no SRE.
const YAML = `${PEOPLE_YAML.replace("ids: ['slack:USAM']", "ids: ['slack:USAM', 'console:sam']").replace("ids: ['slack:UTOM', 'dingtalk:1001']", "ids: ['slack:UTOM', 'dingtalk:1001', 'console:tom']")}
console: { allowAs: true }
`;

describe.skipIf(missingFeature(missing, 'status-page-actions.test.ts'))(
  'status page buttons act through the engine, as the signed-in person',
  () => {
    let h: EngineHome;
    let redis: TestRedis;
    let r: Redis;
    let engine: Engine;
    let http: HttpServer;
    let browser: Browser;
    let closeRoutes: () => void;
    let approvalId = '';
    const prefix = testPrefix();

    const link = async (person: string): Promise<string> => {
      const res = await dr([
        ...['--home', h.home, 'signin', '--as', person, '--url', `${http.url}/`, '--json'],
      ]);
      expect(res.code).toBe(0);
      return (JSON.parse(res.out) as { link: string }).link;
    };

    beforeAll(async () => {
      h = await engineHome(YAML);
      redis = await startRedis();
      r = connectRedis(redis.url, 'test');
      engine = await startEngine(h, redis.url, prefix);
      await engine.start();
      // root asks to fail web over: two on-call SREs must approve, never root.
      const asked = await engine.submit(command('console:root', 'failover web'));
      expect(asked.decision?.outcome).toBe('approval');
      approvalId = asked.decision?.outcome === 'approval' ? asked.decision.approval.id : '';
      const served = await createServeRoutes({
        config: await h.config(),
        redis: r,
        prefix,
        access: {},
        gatewayPoints: false,
        plane: engine,
        home: h.home,
      });
      closeRoutes = served.close;
      http = await createHttpServer({ listen: '127.0.0.1:0', routes: served.routes });
      browser = await launchChromium();
    });

    afterAll(async () => {
      await browser?.close();
      await http?.close();
      closeRoutes?.();
      await engine?.close();
      r?.disconnect();
      await redis?.stop();
      await h?.cleanup();
    });

    it('is read-only until signed in, and says how to sign in', async () => {
      const page = await browser.newPage();
      const served = await page.goto(`${http.url}/`, { timeout: 30_000 });
      expect(served?.headers()['content-security-policy']).toContain(
        "form-action 'self'; frame-ancestors 'none'",
      );
      expect(await page.locator('#signin').textContent()).toContain('run dr signin');
      expect(await page.locator('form.act button').count()).toBe(0);
      await page.close();
      const res = await fetch(`${http.url}/act`, {
        method: 'POST',
        body: new URLSearchParams({ verb: 'drill', app: 'web' }),
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain('dr signin');
    });

    it('lets an on-call SRE approve and drill with one click each', async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(await link('sam'), { timeout: 30_000 });
      expect(await page.locator('#signin').textContent()).toContain('Signed in as sam');
      await page.click(`#approvals button[data-action="approve ${approvalId}"]`, {
        timeout: 30_000,
      });
      await page.waitForSelector('#reply', { timeout: 30_000 });
      expect(await page.locator('#reply').getAttribute('class')).toContain('reply-ok');
      const record = await new ApprovalStore(r, prefix).get(approvalId);
      expect(record?.approvals.map((a) => a.person)).toEqual(['sam']);
      expect(
        await page.locator(`#approvals tr[data-approval="${approvalId}"]`).textContent(),
      ).toContain('1 of 2');

      await page.click('button[data-action="drill web"]', { timeout: 30_000 });
      await page.waitForURL(/reply=/, { timeout: 30_000 });
      expect(await page.locator('#reply').textContent()).toMatch(/drill/i);
      expect(await page.locator('#reply').getAttribute('class')).toContain('reply-ok');
      await context.close();
    });

    it('shows no approve button to the requester or someone outside the groups', async () => {
      for (const [person, says] of [
        ['root', 'your request: others approve'],
        ['alice', 'needs sre-oncall'],
      ] as const) {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(await link(person), { timeout: 30_000 });
        const row = page.locator(`#approvals tr[data-approval="${approvalId}"]`);
        expect(await row.textContent()).toContain(says);
        expect(await row.locator('button').count()).toBe(0);
        await context.close();
      }
    });

    it('refuses a used link, a forged form and a press from another site', async () => {
      const once = await link('tom');
      const first = await fetch(once, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      expect(first.status).toBe(303);
      const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      expect(cookie.startsWith(`${SESSION_COOKIE}=`)).toBe(true);
      const again = await fetch(once, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      expect(again.status).toBe(401);
      expect(await again.text()).toContain('used already');

      const post = (headers: Record<string, string>, form: Record<string, string>) =>
        fetch(`${http.url}/act`, {
          method: 'POST',
          redirect: 'manual',
          headers: { cookie, ...headers },
          body: new URLSearchParams(form),
          signal: AbortSignal.timeout(10_000),
        });
      const forged = await post({}, { form: 'guess', verb: 'approve', id: approvalId });
      expect(forged.status).toBe(403);
      const page = await (await fetch(`${http.url}/`, { headers: { cookie } })).text();
      const form = /name="form" value="([^"]+)"/.exec(page)?.[1] ?? '';
      expect(form).not.toBe('');
      const elsewhere = await post(
        { origin: 'http://evil.example' },
        { form, verb: 'approve', id: approvalId },
      );
      expect(elsewhere.status).toBe(403);
      const odd = await post({}, { form, verb: 'failover', app: 'web' });
      expect(odd.status).toBe(400);
      expect(await odd.text()).toContain('use drill APP, approve ID or reject ID');
      // The same form from the page itself goes through: tom is the second approver.
      const ok = await post({}, { form, verb: 'approve', id: approvalId });
      expect(ok.status).toBe(303);
      const record = await new ApprovalStore(r, prefix).get(approvalId);
      expect(record?.approvals.map((a) => a.person)).toEqual(['sam', 'tom']);
      expect(record?.status).toBe('granted');
    });
  },
);
