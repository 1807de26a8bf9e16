import { copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer, type HttpServer } from '../../cli/http-server.js';
import { createServeRoutes } from '../../cli/status-page/serve-routes.js';
import { HISTORY_POINTS, type StatusSnapshot } from '../../cli/status-page/status-snapshot.js';
import { type AlertRecord, AlertStore } from '../../engine/alert-store.js';
import { type ApprovalRecord, ApprovalStore } from '../../engine/approval-store.js';
import { encodeRpoSample, rpoHistoryKey } from '../../replicator/gateway/state-publisher.js';
import { emitEvent } from '../../replicator/jobs/operation-events.js';
import type { OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { chromiumUnavailable, launchChromium } from '../helpers/chromium.js';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { sampleValue, scrape } from '../helpers/prometheus-text.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

const missing = redisUnavailable() ?? chromiumUnavailable();
if (missing) process.stderr.write(`skipped status page tests: ${missing}\n`);

describe.skipIf(missingFeature(missing, 'status-page.test.ts'))(
  'status page in headless Chromium',
  () => {
    let t: TestHome;
    let redis: TestRedis;
    let r: Redis;
    let http: HttpServer;
    let browser: Browser;
    let closeRoutes: () => void;
    let rpoAlert: AlertRecord | undefined;
    let silent: AlertRecord | undefined;
    const prefix = 'lifeboat:';

    beforeAll(async () => {
      t = await testHome();
      redis = await startRedis();
      r = new Redis(redis.url);
      const img = join(t.dir, 'web.img');
      await writeImage(img, 2 * 1024 * 1024, 5);
      // The quiesce hooks make the points crash-consistent, so web has an RPO.
      await dr([
        ...['--home', t.home, 'app', 'add', 'web', '--volume', `data=${img}`],
        ...['--quiesce-freeze', 'true', '--quiesce-thaw', 'true'],
      ]);
      await dr(['--home', t.home, 'app', 'add', 'shop-db', '--volume', `db=${img}`]);
      const env = { DR_HOME: t.home, REDIS_URL: redis.url };
      // A real gateway publishes the state; a real agent makes points for web only.
      const gateway = startDr(['gateway'], env);
      await gateway.waitFor(/publishing replication state to Redis/);
      const agent = startDr(
        ['agent', '--app', 'web', '--tracker', 'scan', '--interval', '1s'],
        env,
      );
      await agent.waitFor(/recovery point committed|no change since the last point/);
      const until = Date.now() + 15_000;
      const published = async () => (await r.hget(`${prefix}replication`, 'web')) ?? '';
      while (!/"phase":"continuous".*"lastConsistentPoint":\{/.test(await published())) {
        if (Date.now() > until) throw new Error('the gateway never published web');
        await sleep(100);
      }
      // Three hours of history as a gateway running that long would have left it (every 10 s),
      // with a stretch where web had no consistent point.
      const now = Date.now();
      const m = r.multi();
      for (let at = now - 3 * 3_600_000; at < now - 60_000; at += 10_000) {
        const gap = at > now - 2 * 3_600_000 && at < now - 1.8 * 3_600_000;
        // about a second, wavering, with one burst of writes that pushed it to some 9 s
        const burst = Math.max(0, 8 - Math.abs(at - (now - 40 * 60_000)) / 30_000);
        const lag = gap ? null : 1.2 + 0.4 * Math.sin(at / 400_000) + burst;
        m.zadd(
          rpoHistoryKey('web', prefix),
          at,
          encodeRpoSample({ time: at, lagSeconds: lag, phase: 'continuous' }),
        );
      }
      await m.exec();
      // A finished drill with its RTO, a failover still running, as workers report them.
      const result: OperationResult = {
        opId: 'op-drill1',
        app: 'web',
        mode: 'drill',
        point: 1,
        dataAgeSeconds: 2.5,
        rto: { materialiseMs: 1200, launchMs: 300, healthyMs: 450, totalMs: 2100 },
        health: { ok: true, output: 'ok' },
        server: { id: 'local-1' } as OperationResult['server'],
        resumes: 0,
      };
      const events = `${prefix}events`;
      await emitEvent(r, events, { opId: 'op-drill1', app: 'web', job: 'drill', type: 'started' });
      await emitEvent(r, events, {
        opId: 'op-drill1',
        app: 'web',
        job: 'drill',
        type: 'step',
        step: 'materialised',
      });
      await emitEvent(r, events, {
        opId: 'op-drill1',
        app: 'web',
        job: 'drill',
        type: 'finished',
        result,
      });
      await emitEvent(r, events, {
        opId: 'op-fail2',
        app: 'shop-db',
        job: 'failover',
        type: 'started',
      });
      await emitEvent(r, events, {
        opId: 'op-fail2',
        app: 'shop-db',
        job: 'failover',
        type: 'step',
        step: 'launched',
      });
      // Approvals and alerts in the engine's own stores: one pending, one granted, one expired;
      // one RPO alert escalated, one agent alert acknowledged, one resolved.
      const approvals = new ApprovalStore(r, prefix);
      const approval = (
        id: string,
        status: ApprovalRecord['status'],
        expiresAtMs: number,
      ): ApprovalRecord => ({
        id,
        opId: `op-${id.toLowerCase()}x`,
        verb: 'failover',
        app: 'web',
        requestedBy: 'console:alice',
        requestedPerson: 'alice',
        required: 2,
        groups: ['sre-oncall'],
        approvals: [{ actor: 'console:bob', person: 'bob', at: new Date().toISOString() }],
        status,
        expiresAt: new Date(expiresAtMs).toISOString(),
        expiresAtMs,
        policy: 'approvals',
        args: {},
      });
      await approvals.create(approval('A-7', 'pending', Date.now() + 3_600_000));
      await approvals.create(approval('A-5', 'granted', Date.now() + 3_600_000));
      await approvals.create(approval('A-6', 'pending', Date.now() - 1000));
      const alerts = new AlertStore(r, prefix);
      rpoAlert = await alerts.raise('rpo', 'shop-db', 'alerts', Date.now());
      if (rpoAlert) await alerts.update({ ...rpoAlert, escalatedAt: Date.now() });
      silent = await alerts.raise('agent-silent', 'web', 'alerts', Date.now());
      if (silent) await alerts.ack(silent.id, 'console:bob', Date.now());
      await alerts.raise('agent-silent', 'shop-db', 'alerts', Date.now());
      await alerts.resolve('agent-silent', 'shop-db', Date.now());

      const served = await createServeRoutes({
        config: await t.config(),
        redis: r,
        prefix,
        access: {},
      });
      closeRoutes = served.close;
      http = await createHttpServer({ listen: '127.0.0.1:0', routes: served.routes });
      browser = await launchChromium();
    });

    afterAll(async () => {
      await browser?.close();
      await http?.close();
      closeRoutes?.();
      r?.disconnect();
      await stopAll();
      await redis?.stop();
      await t?.cleanup();
    });

    // The agent keeps replicating web while the page is read, as in production.
    it('shows apps with phase and RPO, the RPO chart, points, operations, approvals and alerts', async () => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      const refusedByCsp: string[] = [];
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) refusedByCsp.push(m.text());
      });
      const served = await page.goto(`${http.url}/`, { timeout: 30_000 });
      // The style is allowed by its hash, not by 'unsafe-inline', and it applies.
      const csp = served?.headers()['content-security-policy'] ?? '';
      expect(csp).toMatch(
        /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; img-src 'self'; form-action 'self'; frame-ancestors 'none'$/,
      );
      expect(csp).not.toContain('unsafe-inline');
      expect(await page.evaluate('getComputedStyle(document.body).backgroundColor')).toBe(
        'rgb(246, 247, 249)',
      );
      expect(refusedByCsp).toEqual([]);
      const web = page.locator('#apps tr[data-app="web"]');
      expect(await web.locator('[data-testid=phase]').textContent()).toBe('continuous');
      expect(await web.locator('[data-testid=rpo]').textContent()).toMatch(
        /^(\d+(\.\d)? s|\d+m( \d+s)?)$/,
      );
      const db = page.locator('#apps tr[data-app="shop-db"]');
      expect(await db.locator('[data-testid=phase]').textContent()).toBe('unprotected');
      expect(await db.locator('[data-testid=rpo]').textContent()).toBe('-');

      // Each volume as the gateway publishes it: the real agent's image, its first copy done.
      const vol = page.locator('.app[data-app="web"] tr[data-volume="data"]');
      expect(await vol.textContent()).toContain('2.0 MiB');
      expect(await vol.locator('[data-testid=initial-sync]').textContent()).toBe('done');
      expect(await vol.locator('[data-testid=backlog]').textContent()).toMatch(
        /^\d+(\.\d)? [KM]?i?B$/,
      );
      expect(await web.locator('[data-testid=runs-at]').textContent()).toMatch(/^home \S+/);
      expect(await page.locator('#store').textContent()).toMatch(
        /^Store: \d+(\.\d)? [KMG]?i?B of encrypted replicas for 1 app · gateway disk .* free of /,
      );
      const chart = page.locator('svg.rpo-chart[data-app="web"]');
      // Three hours of samples every 10 s, one point per minute of the 6 h window on the chart.
      const plotted = Number(await chart.getAttribute('data-samples'));
      expect(plotted).toBeGreaterThan(150);
      expect(plotted).toBeLessThanOrEqual(HISTORY_POINTS);
      // The stretch without a consistent point splits the line in two.
      expect(await chart.locator('polyline.rpo-line').count()).toBe(2);
      expect(await page.locator('svg.rpo-chart[data-app="shop-db"]').textContent()).toContain(
        'no RPO samples',
      );
      const points = page.locator('.app[data-app="web"] [data-testid=points] li');
      expect(await points.count()).toBeGreaterThanOrEqual(1);
      expect(await points.first().textContent()).toMatch(
        /^#\d+ \d{4}-\d\d-\d\d .* app-consistent$/,
      );

      const drill = page.locator('#operations tr[data-op="op-drill1"]');
      expect(await drill.locator('[data-testid=rto-total]').textContent()).toBe('2.1 s');
      expect(await drill.textContent()).toContain('1.2 s / 0.3 s / 0.5 s');
      expect(await page.locator('#operations tr[data-op="op-fail2"]').textContent()).toContain(
        'running (launched)',
      );

      expect(await page.locator('#approvals tr').count()).toBe(2); // header + A-7; A-5 granted, A-6 expired
      expect(await page.locator('#approvals tr[data-approval="A-7"]').textContent()).toContain(
        '1 of 2',
      );
      const escalated = page.locator(`#alerts tr[data-alert="${rpoAlert?.id}"]`);
      expect(await escalated.textContent()).toContain('RPO above its objective');
      expect(await escalated.textContent()).toContain('critical (escalated)');
      expect(await page.locator(`#alerts tr[data-alert="${silent?.id}"]`).textContent()).toContain(
        'by console:bob',
      );
      expect(await page.locator('#alerts tbody tr').count()).toBe(2);
      expect(await page.locator('#problems').count()).toBe(0);

      const shot = join(t.dir, 'status-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect((await stat(shot)).size).toBeGreaterThan(10_000);
      if (process.env.LIFEBOAT_SCREENSHOT) await copyFile(shot, process.env.LIFEBOAT_SCREENSHOT);
      await page.close();
    });

    it('serves the same state as JSON at /api/status', async () => {
      const res = await fetch(`${http.url}/api/status?hours=2`, {
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(200);
      const s = (await res.json()) as StatusSnapshot;
      expect(s.windowHours).toBe(2);
      expect(s.apps.map((a) => a.app)).toEqual(['shop-db', 'web']);
      const web = s.apps.find((a) => a.app === 'web');
      expect(web?.phase).toBe('continuous');
      expect(web?.rpoSeconds).toBeGreaterThanOrEqual(0);
      expect(web?.volumes.map((v) => [v.name, v.sizeBytes])).toEqual([['data', 2 * 1024 * 1024]]);
      expect(web?.runsAt.site).toBe('home');
      expect(s.store.totalBytes).toBeGreaterThan(0);
      expect(s.operations.find((o) => o.opId === 'op-drill1')).toMatchObject({
        healthy: true,
        dataAgeSeconds: 2.5,
        steps: [{ step: 'materialised' }],
      });
      expect(web?.history.every(([at]) => at >= Date.now() - 2 * 3_600_000 - 60_000)).toBe(true);
      expect(s.operations.map((o) => [o.opId, o.state])).toEqual([
        ['op-fail2', 'running'],
        ['op-drill1', 'succeeded'],
      ]);
      expect(s.approvals.map((a) => a.id)).toEqual(['A-7']);
      expect(s.alerts.map((a) => [a.kind, a.app, a.severity, a.acknowledgedBy ?? null])).toEqual([
        ['rpo', 'shop-db', 'critical', null],
        ['agent-silent', 'web', 'warning', 'console:bob'],
      ]);
    });

    it('refuses a bad hours value with the range', async () => {
      const res = await fetch(`${http.url}/api/status?hours=99`, {
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('from 1 to 24');
    });

    it('exposes job durations, RTO, approvals pending and alerts open at /metrics', async () => {
      const m = await scrape(`${http.url}/metrics`);
      expect(
        sampleValue(m, 'lifeboat_job_seconds_count', { kind: 'drill', outcome: 'succeeded' }),
      ).toBe(1);
      expect(sampleValue(m, 'lifeboat_rto_seconds_sum', { mode: 'drill' })).toBeCloseTo(2.1);
      expect(
        sampleValue(m, 'lifeboat_last_rto_seconds', { app: 'web', step: 'materialise' }),
      ).toBeCloseTo(1.2);
      expect(sampleValue(m, 'lifeboat_operations_running', { kind: 'failover' })).toBe(1);
      expect(sampleValue(m, 'lifeboat_approvals_pending')).toBe(1);
      expect(
        sampleValue(m, 'lifeboat_alerts_open', {
          kind: 'rpo',
          severity: 'critical',
          acknowledged: 'no',
        }),
      ).toBe(1);
      expect(
        sampleValue(m, 'lifeboat_alerts_open', { kind: 'agent-silent', acknowledged: 'yes' }),
      ).toBe(1);
      expect(sampleValue(m, 'lifeboat_rpo_seconds', { app: 'web' })).toBeGreaterThanOrEqual(0);
      // A second scrape counts nothing twice.
      const again = await scrape(`${http.url}/metrics`);
      expect(
        sampleValue(again, 'lifeboat_job_seconds_count', { kind: 'drill', outcome: 'succeeded' }),
      ).toBe(1);
    });

    it('still renders, naming what it cannot read, when Redis does not answer', async () => {
      const dead = new Redis('redis://127.0.0.1:1', {
        lazyConnect: true,
        maxRetriesPerRequest: null,
        retryStrategy: () => 1000,
      });
      dead.on('error', () => undefined); // refused connections are the point of this test
      const served = await createServeRoutes({
        config: await t.config(),
        redis: dead,
        prefix,
        access: {},
        gatewayPoints: false,
      });
      const other = await createHttpServer({ listen: '127.0.0.1:0', routes: served.routes });
      try {
        const page = await browser.newPage();
        await page.goto(`${other.url}/`, { timeout: 30_000 });
        expect(await page.locator('#problems').textContent()).toContain(
          'replication state from Redis',
        );
        expect(
          await page.locator('#apps tr[data-app="web"] [data-testid=phase]').textContent(),
        ).toBe('unprotected');
        await page.close();
      } finally {
        await other.close();
        served.close();
        dead.disconnect();
      }
    });
  },
);
