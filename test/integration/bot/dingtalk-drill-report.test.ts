import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DingTalkSurface } from '../../../bot/dingtalk/dingtalk-surface.js';
import type { Notice } from '../../../engine/contract.js';
import { breachesOf, type DrillReport, summaryLine } from '../../../engine/drill-report.js';
import { DingTalkGateway } from '../../fakes/dingtalk-gateway.js';
import { DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';
import { readPng } from '../../helpers/png-pixels.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { TablePlane } from '../../helpers/table-plane.js';

const DAY = 86_400_000;

/** A week of made-up RPO (one breach) and two drills, one failed. */
function weekReport(): DrillReport {
  const to = Date.now();
  const from = to - 7 * DAY;
  const samples = Array.from({ length: 7 * 24 }, (_, i) => ({
    app: 'web',
    time: from + i * 3_600_000,
    lagSeconds: i >= 50 && i < 54 ? 200 : 10 + (i % 7),
  }));
  const r: DrillReport = {
    subject: 'web',
    apps: ['web'],
    from,
    to,
    days: 7,
    objectives: { web: 60 },
    samples,
    breaches: breachesOf(samples, 60),
    drills: [
      {
        app: 'web',
        opId: 'op-1',
        at: from + 2 * DAY,
        ok: true,
        rto: { materialiseMs: 20_000, launchMs: 9000, healthyMs: 6000, totalMs: 36_000 },
        dataLossSeconds: 14,
      },
      { app: 'web', opId: 'op-2', at: from + 6 * DAY, ok: false, error: 'health check failed' },
    ],
    summary: '',
  };
  r.summary = summaryLine(r, 4 / 168);
  return r;
}

describe.skipIf(missingFeature(redisUnavailable(), 'dingtalk-drill-report.test.ts'))(
  'drill report pictures in DingTalk: media upload and image message (emulators, real Redis)',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let gateway: DingTalkGateway;
    let openapi: DingTalkOpenApi;
    const surfaces: DingTalkSurface[] = [];

    const surface = async (withOapi: boolean) => {
      const s = await DingTalkSurface.create({
        plane: new TablePlane({ requester: 'dingtalk:staff-alice' }),
        credentials: {
          clientId: gateway.clientId,
          clientSecret: gateway.clientSecret,
          apiUrl: openapi.url,
          ...(withOapi ? { oapiUrl: openapi.url } : {}),
          gatewayUrl: gateway.openUrl,
          robotCode: gateway.clientId,
          cardTemplateId: 'lifeboat-card.schema',
        },
        redis: cmd,
        prefix: `dr${Date.now()}${surfaces.length}:`,
      });
      surfaces.push(s);
      return s;
    };

    const notice = (targets: string[]): Notice => {
      const report = weekReport();
      return {
        id: '1-0',
        kind: 'report.ready',
        key: 'report:op-2',
        app: 'web',
        targets,
        severity: 'warning',
        summary: `Drill report of web: ${report.summary}`,
        report,
        time: Date.now(),
      };
    };

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      gateway = new DingTalkGateway();
      await gateway.start();
      openapi = new DingTalkOpenApi(gateway.clientId, gateway.clientSecret);
      await openapi.start();
    });

    afterAll(async () => {
      for (const s of surfaces) await s.stop();
      await gateway?.stop();
      await openapi?.stop();
      cmd?.disconnect();
      await redis?.stop();
    });

    it('uploads the PNG as media and sends it as an image message, the summary under it', async () => {
      const s = await surface(true);
      await s.postNotice(notice(['dingtalk:cid-web', 'slack:CWEB', 'dingtalk:user:staff-ops']));
      const [media, ...more] = [...openapi.media.uploaded.values()];
      expect(more).toHaveLength(1); // one per conversation
      expect(media?.type).toBe('image');
      expect(media?.filename).toMatch(/^drill-report-web-\d{4}-\d\d-\d\d\.png$/);
      const group = openapi.messages.filter((m) => m.to === 'cid-web');
      expect(group.map((m) => (m.photo ? 'picture' : m.text.split('\n')[0]))).toEqual([
        'picture',
        '**Drill report: web**',
      ]);
      expect(group[1]?.text).toContain('2 drill(s), 1 passed');
      expect(group[1]?.text).toContain('the last drill FAILED');
      const png = readPng(group[0]?.photo as Buffer);
      expect(png.width).toBeGreaterThan(1200);
      expect(png.inked({ x0: 0.1, y0: 0.2, x1: 0.9, y1: 0.5 })).toBeGreaterThan(2000);
      expect(png.coloured([0xe4, 0x57, 0x56])).toBeGreaterThan(100); // breach, objective, failed drill
      const privately = openapi.messages.filter((m) => m.to === 'staff-ops');
      expect(privately[0]?.photo?.length).toBeGreaterThan(1000);
      expect(openapi.cards.size).toBe(0); // a report is no card
    });

    it('a surface that cannot upload sends the summary and says the picture did not go', async () => {
      const s = await surface(false);
      const before = openapi.media.uploaded.size;
      await s.postNotice(notice(['dingtalk:cid-plain']));
      const sent = openapi.messages.filter((m) => m.to === 'cid-plain');
      expect(sent).toHaveLength(1);
      expect(sent[0]?.photo).toBeUndefined();
      expect(sent[0]?.text).toContain('2 drill(s), 1 passed');
      expect(sent[0]?.text).toMatch(
        /the report picture could not be posted here: .*no media upload URL set/,
      );
      expect(openapi.media.uploaded.size).toBe(before);
    });

    it('the media emulator refuses what DingTalk refuses', async () => {
      const token = openapi.tokens[0] ?? '';
      const post = async (query: string, body: Blob) => {
        const form = new FormData();
        form.append('media', body, 'x.png');
        const res = await fetch(`${openapi.url}/media/upload?${query}`, {
          method: 'POST',
          body: form,
        });
        return (await res.json()) as { errcode: number };
      };
      const png = new Blob([Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3])]);
      expect((await post('access_token=nope&type=image', png)).errcode).toBe(40014);
      expect((await post(`access_token=${token}&type=picture`, png)).errcode).toBe(40004);
      expect(
        (await post(`access_token=${token}&type=image`, new Blob(['not a picture']))).errcode,
      ).toBe(40005);
      expect((await post(`access_token=${token}&type=image`, png)).errcode).toBe(0);
    });
  },
);
