import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackSurface } from '../../../bot/slack/slack-surface.js';
import { createHttpServer, type HttpServer } from '../../../cli/http-server.js';
import type { Engine } from '../../../engine/index.js';
import { SlackEmulator } from '../../fakes/slack-web-api.js';
import { type EngineHome, engineHome, startEngine, testPrefix } from '../../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

/** Presses that must change nothing, against the real engine (its clock moved by the test). */
describe.skipIf(missingFeature(redisUnavailable(), 'slack-engine.test.ts'))(
  'Slack with the real engine: refused presses and unknown apps',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let h: EngineHome;
    let engine: Engine;
    let slack: SlackEmulator;
    let surface: SlackSurface;
    let server: HttpServer;
    let events: string;
    let clock = Date.now();

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      h = await engineHome();
      const prefix = testPrefix();
      engine = await startEngine(h, redis.url, prefix, { now: () => clock });
      slack = new SlackEmulator();
      await slack.start();
      surface = await SlackSurface.create({
        plane: engine,
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
      if (!route) throw new Error('no HTTP route');
      server = await createHttpServer({ listen: '127.0.0.1:0', routes: [route] });
      events = `${server.url}/slack/events`;
    });

    afterAll(async () => {
      await surface?.stop();
      await server?.close();
      await engine?.close();
      await slack?.stop();
      cmd?.disconnect();
      await redis?.stop();
      await h?.cleanup();
    });

    it('answers a press by someone not eligible, and one on an expired card, privately; the card stays', async () => {
      await slack.send(
        events,
        slack.slashCommand('failover web', { user: 'USAM', channel: 'CWEB' }),
      );
      const card = await waitFor('the approval card', () => slack.channelMessages('CWEB')[0]);
      const before = JSON.stringify(card);
      await slack.send(events, slack.buttonPress(card, 0, { user: 'UDAN' }));
      const dan = await waitFor('the answer to dan', () =>
        slack.ephemerals.find((e) => e.args.user === 'UDAN'),
      );
      expect(dan.args.text).toMatch(
        /^Only members of sre-oncall may approve A-\d+; dan is in devs$/,
      );
      await slack.send(events, slack.buttonPress(card, 0, { user: 'UNOBODY' }));
      const stranger = await waitFor('the answer to a stranger', () =>
        slack.ephemerals.find((e) => e.args.user === 'UNOBODY'),
      );
      expect(stranger.args.text).not.toMatch(/^Approved/);
      clock += 31 * 60_000; // past the policy's 30 minutes
      await slack.send(events, slack.buttonPress(card, 0, { user: 'UTOM' }));
      const tom = await waitFor('the answer to tom', () =>
        slack.ephemerals.find((e) => e.args.user === 'UTOM'),
      );
      expect(tom.args.text).toMatch(/^A-\d+ expired at .*; ask again with `failover web`$/);
      expect(JSON.stringify(card)).toBe(before);
      expect(slack.callsOf('chat.update')).toEqual([]);
    });

    it("answers an unknown app with the engine's did-you-mean, privately", async () => {
      const body = slack.slashCommand('drill wbe', { user: 'USAM', channel: 'CWEB' });
      await slack.send(events, body);
      const trigger = new URLSearchParams(body).get('trigger_id');
      const r = await waitFor('the answer', () => slack.responses.find((x) => x.id === trigger));
      expect(r.body.response_type).toBe('ephemeral');
      expect(String(r.body.text)).toMatch(/wbe.*Did you mean web\?/i);
    });
  },
);
