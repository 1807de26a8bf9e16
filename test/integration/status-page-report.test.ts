import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer, type HttpServer } from '../../cli/http-server.js';
import { reportRoute } from '../../cli/status-page/report-route.js';
import { statusRoutes } from '../../cli/status-page/status-routes.js';
import { AuditLog } from '../../engine/audit-log.js';
import { encodeRpoSample, rpoHistoryKey } from '../../replicator/gateway/state-publisher.js';
import { readPng } from '../helpers/png-pixels.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

describe.skipIf(missingFeature(redisUnavailable(), 'status-page-report.test.ts'))(
  'the drill report picture on the status page',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let http: HttpServer;
    const prefix = `spr${Date.now()}:`;

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      const now = Date.now();
      for (let t = now - 86_400_000; t < now; t += 600_000)
        await cmd.zadd(
          rpoHistoryKey('web', prefix),
          t,
          encodeRpoSample({
            time: t,
            lagSeconds: t > now - 3_600_000 ? 400 : 20,
            phase: 'continuous',
          }),
        );
      await new AuditLog(cmd, prefix).append('result', {
        opId: 'op-d1',
        app: 'web',
        job: 'drill',
        ok: true,
        result: {
          dataAgeSeconds: 9,
          rto: { materialiseMs: 3000, launchMs: 2000, healthyMs: 1000, totalMs: 6500 },
          health: { ok: true, output: 'ok' },
        },
      });
      http = await createHttpServer({
        listen: '127.0.0.1:0',
        routes: statusRoutes({
          access: {},
          redis: cmd,
          prefix,
          configuredApps: () => ['web'],
          objectives: () => ({ web: 60 }),
        }),
      });
    });

    afterAll(async () => {
      await http?.close();
      cmd?.disconnect();
      await redis?.stop();
    });

    const get = (path: string) =>
      fetch(`${http.url}${path}`, { signal: AbortSignal.timeout(60_000) });

    it('the page shows each app’s report as an image from its own route', async () => {
      const html = await (await get('/')).text();
      expect(html).toContain('<img class="drill-report" src="/report/web.png" width="640"');
      expect(html).not.toMatch(/style="/); // the CSP allows style only by hash
    });

    it('serves the PNG: RPO plot and the drill’s bar both drawn', async () => {
      const res = await get('/report/web.png?days=7');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      const png = readPng(Buffer.from(await res.arrayBuffer()));
      expect(png.width).toBeGreaterThan(1200);
      expect(png.inked({ x0: 0.1, y0: 0.2, x1: 0.9, y1: 0.5 })).toBeGreaterThan(2000);
      expect(png.coloured([0x4c, 0x78, 0xa8])).toBeGreaterThan(500); // the materialise step
      expect(png.coloured([0xe4, 0x57, 0x56])).toBeGreaterThan(100); // the breach of the last hour
    });

    it('refuses an unknown app, a bad days value and a non-GET with one line each', async () => {
      const unknown = await get('/report/nope.png');
      expect(unknown.status).toBe(404);
      expect(await unknown.text()).toContain('no app "nope" in dr.yaml');
      const days = await get('/report/web.png?days=0');
      expect(days.status).toBe(400);
      expect(await days.text()).toContain('from 1 to 366');
      const post = await fetch(`${http.url}/report/web.png`, { method: 'POST' });
      expect(post.status).toBe(405);
    });

    it('asks the status page’s access rule first', async () => {
      const refused = reportRoute(
        { redis: cmd, prefix, configuredApps: () => ['web'] },
        (_req, res) => {
          res.writeHead(401).end('a valid token is needed');
          return false;
        },
      );
      const other = await createHttpServer({ listen: '127.0.0.1:0', routes: [refused] });
      try {
        const res = await fetch(`${other.url}/report/web.png`);
        expect(res.status).toBe(401);
      } finally {
        await other.close();
      }
    });
  },
);
