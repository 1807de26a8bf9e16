import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../engine/audit-log.js';
import type { Engine } from '../../engine/index.js';
import { renderDrillReport } from '../../engine/render-drill-report.js';
import { rollUpRpoSample } from '../../replicator/gateway/rpo-history.js';
import { command, type EngineHome } from '../helpers/engine-home.js';
import { type EngineRig, startEngineRig } from '../helpers/engine-rig.js';
import { planResult } from '../helpers/plan-result.js';
import { expectReportPicture, readPng } from '../helpers/png-pixels.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

const DAY = 86_400_000;
const rto = { materialiseMs: 30_000, launchMs: 12_000, healthyMs: 8_000, totalMs: 50_000 };

/** An app drill's result as the audit log keeps it. */
const appDrill = (opId: string, app: string, dataAgeSeconds: number) => ({
  opId,
  app,
  job: 'drill',
  ok: true,
  result: { opId, app, mode: 'drill', point: 3, dataAgeSeconds, rto, health: { ok: true } },
});

describe.skipIf(missingFeature(redisUnavailable(), 'report-plan.test.ts'))(
  'report PLAN: a plan’s drill report from the engine, chat grammar and dr',
  () => {
    let rig: EngineRig;
    let cmd: Redis;
    let h: EngineHome;
    let engine: Engine;
    let prefix: string;

    beforeAll(async () => {
      // Two plans over the apps web and shop of the test home: store has run as a plan, pair not.
      rig = await startEngineRig({
        plans: {
          store:
            'points: plan-consistent\ngroups:\n  - apps: [shop]\n    then:\n      - hook: "true"\n  - apps: [web]\n',
          pair: 'groups:\n  - apps: [web, shop]\n',
        },
        start: true,
      });
      ({ conn: cmd, h, engine, prefix } = rig);
      // 20 days of history in the hourly tier (shop 3 hours over its objective on day -9), the
      // last day raw is not needed: the report reads whichever tier holds the time.
      const now = Date.now();
      const m = cmd.multi();
      for (let t = now - 20 * DAY; t < now; t += 600_000) {
        const over = t > now - 9 * DAY && t < now - 9 * DAY + 3 * 3_600_000;
        for (const app of ['shop', 'web'])
          rollUpRpoSample(
            m,
            app,
            { time: t, lagSeconds: app === 'shop' && over ? 500 : 20, phase: 'continuous' },
            prefix,
          );
      }
      await m.exec();
      const audit = new AuditLog(cmd, prefix);
      await audit.append('result', appDrill('op-s1', 'shop', 12));
      await audit.append('result', appDrill('op-w1', 'web', 30));
      await audit.append('result', {
        opId: 'op-plan1',
        app: 'store',
        job: 'plan',
        ok: true,
        result: planResult(now - 70_000),
      });
      // A failover of the plan is not one of its drills.
      await audit.append('result', {
        opId: 'op-plan2',
        app: 'store',
        job: 'plan',
        ok: true,
        result: planResult(now - 50_000, { verb: 'failover' }),
      });
    }, 120_000);

    afterAll(async () => {
      await stopAll();
      await rig?.stop();
    });

    it('a plan that ran: every app’s RPO, the plan’s drills by group, drawn into a PNG', async () => {
      const reply = await engine.submit(
        command('slack:UDAN', 'report store', { args: { days: 30 } }),
      );
      expect(reply.ok).toBe(true);
      const r = reply.report;
      expect(r?.subject).toBe('store');
      expect(r?.apps).toEqual(['shop', 'web']);
      expect(r?.plan?.groups).toEqual([['shop'], ['web']]);
      expect(r?.planDrills?.map((d) => d.opId)).toEqual(['op-plan1']);
      expect(r?.breaches.map((b) => b.app)).toEqual(['shop']);
      expect(reply.summary).toMatch(
        /^store, last 30 d; 1 plan drill\(s\), 1 passed; RTO median 66s \(last 66s\); data loss at most 30s; RPO over objective/,
      );
      if (!r) throw new Error('no report');
      const pic = await renderDrillReport(r);
      expectReportPicture(pic);
      expect(pic.svg).toContain('group 1 (shop)');
    });

    it('a plan that never ran as one: its apps’ drills instead', async () => {
      const reply = await engine.submit(command('slack:UDAN', 'report pair'));
      expect(reply.ok).toBe(true);
      expect(reply.report?.planDrills).toEqual([]);
      expect(reply.report?.drills.map((d) => d.app)).toEqual(['shop', 'web']);
      expect(reply.summary).toMatch(/^pair, last 30 d; 2 drill\(s\), 2 passed; RTO median 50s/);
    });

    it('an unknown name: the nearest app or plan, else both lists', async () => {
      const typo = await engine.submit(command('slack:UDAN', 'report stoer'));
      expect(typo.ok).toBe(false);
      expect(typo.summary).toBe('Unknown app or plan "stoer". Did you mean store?');
      const none = await engine.submit(command('slack:UDAN', 'report nothing-here'));
      expect(none.summary).toBe(
        'Unknown app or plan "nothing-here". Apps: web, shop; plans: pair, store',
      );
    });

    it('`dr report store --out F.png`; bad --days and unknown names are one line each', async () => {
      const env = { REDIS_URL: rig.redis.url, DR_REDIS_PREFIX: prefix, DR_LOG_LEVEL: 'warn' };
      const out = join(h.dir, 'store.png');
      const ok = startDr(['--home', h.home, 'report', 'store', '--out', out], env);
      expect(await ok.exited).toBe(0);
      expect(ok.output()).toMatch(/^store, last 30 d; 1 plan drill\(s\), 1 passed/);
      const png = readPng(await readFile(out));
      expect(png.width).toBeGreaterThan(1200);
      expect(png.inked({ x0: 0.1, y0: 0.6, x1: 0.9, y1: 0.9 })).toBeGreaterThan(2000);
      for (const [days, says] of [
        ['0', '--days 0 is out of range: it takes 1 to 366'],
        ['abc', '--days takes a whole number of days like 30, not "abc"'],
        ['10000', '--days 10000 is out of range: it takes 1 to 366'],
      ] as const) {
        const bad = startDr(['--home', h.home, 'report', 'store', '--days', days], env);
        expect(await bad.exited, days).toBe(2);
        expect(bad.output()).toContain(says);
      }
      const unknown = startDr(['--home', h.home, 'report', 'stoer'], env);
      expect(await unknown.exited).toBe(2);
      expect(unknown.output()).toContain('Unknown app or plan "stoer". Did you mean store?');
      expect(unknown.output()).toContain('`dr plan lint`');
    }, 180_000);

    it('a broken plan file is named in the answer, never a crash', async () => {
      await writeFile(join(h.home, 'plans', 'broken.yaml'), 'groups: [\n');
      try {
        const r = await engine.submit(command('slack:UDAN', 'report store'));
        expect(r.ok).toBe(false);
        expect(r.summary).toMatch(
          /^"store" is not an app, and the plans in .* have 1 problem\(s\), the first .*broken\.yaml:\d+: .*; `dr plan lint` lists them$/,
        );
        // An app's report does not need the plans.
        expect((await engine.submit(command('slack:UDAN', 'report web'))).ok).toBe(true);
      } finally {
        await writeFile(join(h.home, 'plans', 'broken.yaml'), 'groups:\n  - apps: [web]\n');
      }
    });
  },
);
