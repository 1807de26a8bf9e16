// Probe 7 of issue 15: what is not verified never writes to Redis (real Bolt, real DWClient, real Redis).
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DingTalkSurface } from '../../../bot/dingtalk/dingtalk-surface.js';
import { SlackSurface } from '../../../bot/slack/slack-surface.js';
import { createHttpServer, type HttpServer, healthRoute } from '../../../cli/http-server.js';
import { DingTalkGateway } from '../../fakes/dingtalk-gateway.js';
import { DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';
import { SlackEmulator } from '../../fakes/slack-web-api.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { TablePlane } from '../../helpers/table-plane.js';
import { waitFor } from '../../helpers/wait-for.js';

const missing = redisUnavailable();

describe.skipIf(missingFeature(missing, 'security/chat-verify.test.ts'))(
  'security: chat surfaces verify before they write to Redis',
  () => {
    let redis: TestRedis;
    let conn: Redis;

    beforeAll(async () => {
      redis = await startRedis();
      conn = new Redis(redis.url);
    });
    afterAll(async () => {
      conn?.disconnect();
      await redis?.stop();
    });

    const keysUnder = (prefix: string) => conn.keys(`${prefix}*`);

    describe('Slack', () => {
      let slack: SlackEmulator;
      let surface: SlackSurface;
      let server: HttpServer;
      let plane: TablePlane;
      let cmd: Redis;
      let events: string;
      const prefix = `s${randomBytes(3).toString('hex')}:`;

      beforeAll(async () => {
        cmd = new Redis(redis.url);
        slack = new SlackEmulator();
        await slack.start();
        plane = new TablePlane({ requester: 'slack:U0ALICE' });
        surface = await SlackSurface.create({
          plane,
          credentials: {
            mode: 'http',
            botToken: slack.token,
            signingSecret: slack.signingSecret,
            apiUrl: slack.apiUrl,
          },
          redis: cmd,
          prefix,
        });
        await surface.start();
        const route = surface.route;
        if (!route) throw new Error('the HTTP receiver has no route');
        server = await createHttpServer({ listen: '127.0.0.1:0', routes: [healthRoute, route] });
        events = `${server.url}/slack/events`;
      });
      afterAll(async () => {
        await surface?.stop();
        await server?.close();
        await slack?.stop();
        cmd?.disconnect();
      });

      it('500 requests with random signatures: all 401, no key written, nothing reaches the engine', async () => {
        const body = slack.slashCommand('status');
        const statuses: number[] = [];
        for (let round = 0; round < 25; round++) {
          const batch = Array.from({ length: 20 }, () =>
            slack
              .send(events, body, { signature: `v0=${randomBytes(32).toString('hex')}` })
              .then((r) => r.status),
          );
          statuses.push(...(await Promise.all(batch)));
        }
        expect(statuses).toHaveLength(500);
        expect(new Set(statuses)).toEqual(new Set([401]));
        expect(await keysUnder(prefix)).toEqual([]);
        expect(plane.seen).toEqual([]);
      });

      it('refuses unsigned, stale, future and oversized requests without a key; an unsigned ssl_check writes none', async () => {
        const body = slack.slashCommand('status');
        const now = Math.floor(Date.now() / 1000);
        expect((await slack.send(events, body, { signature: '' })).status).toBe(401);
        expect((await slack.send(events, body, { timestamp: now - 6 * 60 })).status).toBe(401);
        expect((await slack.send(events, body, { timestamp: now + 10 * 60 })).status).toBe(401);
        const big = `${body}&pad=${'x'.repeat(2 * 1024 * 1024)}`;
        expect((await slack.send(events, big)).status).toBe(413);
        const ssl = await slack.send(events, 'ssl_check=1&token=x', {
          signature: `v0=${randomBytes(32).toString('hex')}`,
        });
        expect(ssl.status).toBe(200);
        expect(await keysUnder(prefix)).toEqual([]);
        expect(plane.seen).toEqual([]);
      });

      it('what held: a signed request passes once and leaves one signature key; its replay is refused', async () => {
        const body = slack.slashCommand('status');
        const now = Math.floor(Date.now() / 1000);
        expect((await slack.send(events, body, { timestamp: now })).status).toBe(200);
        expect((await slack.send(events, body, { timestamp: now })).status).toBe(401);
        await waitFor('the one command', () => plane.seen.length === 1);
        const sigKeys = (await keysUnder(prefix)).filter((k) => k.includes(':bot:slack:sig:'));
        expect(sigKeys).toHaveLength(1);
        expect(await conn.ttl(sigKeys[0] as string)).toBeGreaterThan(0);
      });

      it('escapes what a person typed in the top-level text of a reply: <!channel> pings nobody', async () => {
        const body = slack.slashCommand('drill <!channel>');
        expect((await slack.send(events, body)).status).toBe(200);
        const trigger = new URLSearchParams(body).get('trigger_id');
        const r = await waitFor('the answer', () => slack.responses.find((x) => x.id === trigger));
        expect(String(r.body.text)).toContain('&lt;!channel&gt;');
        expect(JSON.stringify(r.body)).not.toContain('<!channel>');
      });
    });

    describe('DingTalk', () => {
      let gateway: DingTalkGateway;
      let openapi: DingTalkOpenApi;
      let surface: DingTalkSurface;
      let plane: TablePlane;
      let cmd: Redis;
      const prefix = `d${randomBytes(3).toString('hex')}:`;

      beforeAll(async () => {
        cmd = new Redis(redis.url);
        gateway = new DingTalkGateway();
        await gateway.start();
        openapi = new DingTalkOpenApi(gateway.clientId, gateway.clientSecret);
        await openapi.start();
        plane = new TablePlane({ requester: 'dingtalk:staff-alice' });
        surface = await DingTalkSurface.create({
          plane,
          credentials: {
            clientId: gateway.clientId,
            clientSecret: gateway.clientSecret,
            apiUrl: openapi.url,
            gatewayUrl: gateway.openUrl,
            // The gateway's messages name the AppKey as their robot: not this robot.
            robotCode: 'another-robot',
            cardTemplateId: 'lifeboat-card.schema',
          },
          redis: cmd,
          prefix,
        });
        await surface.start();
        await waitFor('the stream', () => surface.connected && gateway.connections === 1);
      });
      afterAll(async () => {
        await surface?.stop();
        await gateway?.stop();
        await openapi?.stop();
        cmd?.disconnect();
      });

      it("a message for another robot and a press on a card not Lifeboat's write nothing and run nothing", async () => {
        const msg = gateway.robotMessage('dr status', { msgId: `msg-${randomUUID()}` });
        const press = gateway.cardPress('forged-card', 'approve A-1', { userId: 'staff-bob' });
        await waitFor('both acked', () => gateway.ackOf(msg) && gateway.ackOf(press));
        expect(JSON.stringify(gateway.ackOf(press))).toContain("not one of Lifeboat's");
        expect(await keysUnder(`${prefix}bot:dingtalk:delivery:`)).toEqual([]);
        expect(plane.seen).toEqual([]);
      });

      it('what held: a press on one of its cards is taken once, by its message id', async () => {
        const card = `lb-${randomUUID()}`;
        const press = gateway.cardPress(card, 'approve A-1', { userId: 'staff-bob' });
        await waitFor('the press answered', () => gateway.ackOf(press));
        await waitFor('the press reached the engine', () => plane.seen.length === 1);
        expect(await keysUnder(`${prefix}bot:dingtalk:delivery:`)).toEqual([
          `${prefix}bot:dingtalk:delivery:card:${press}`,
        ]);
      });
    });
  },
);
