import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { publishNotice } from '../../../bot/notice-reader.js';
import { SlackSurface } from '../../../bot/slack/slack-surface.js';
import { createHttpServer, type HttpServer, healthRoute } from '../../../cli/http-server.js';
import type { Notice } from '../../../engine/contract.js';
import { SlackEmulator } from '../../fakes/slack-web-api.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { TablePlane } from '../../helpers/table-plane.js';
import { waitFor } from '../../helpers/wait-for.js';

const missing = redisUnavailable();

describe.skipIf(missingFeature(missing, 'slack-surface.test.ts'))(
  'Slack surface (real Bolt, Web API emulator, real Redis)',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let blocking: Redis;
    let slack: SlackEmulator;
    let surface: SlackSurface;
    let server: HttpServer;
    let plane: TablePlane;
    let events: string;
    const prefix = `t${Date.now()}:`;

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      blocking = new Redis(redis.url);
      slack = new SlackEmulator();
      await slack.start();
      plane = new TablePlane({ requester: 'slack:U0ALICE', details: true });
      surface = await SlackSurface.create({
        plane,
        credentials: {
          mode: 'http',
          botToken: slack.token,
          signingSecret: slack.signingSecret,
          apiUrl: slack.apiUrl,
        },
        redis: cmd,
        noticeRedis: blocking,
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
      blocking?.disconnect();
      await redis?.stop();
    });

    beforeEach(() => {
      plane.seen.length = 0;
    });

    it('acks a signed /dr at once and answers through response_url', async () => {
      const body = slack.slashCommand('status');
      const res = await slack.send(events, body);
      expect(res.status).toBe(200);
      expect(res.body).toBe('');
      const trigger = new URLSearchParams(body).get('trigger_id');
      const answer = await waitFor('the status answer', () =>
        slack.responses.find((r) => r.id === trigger),
      );
      expect(answer.body.response_type).toBe('in_channel');
      expect(answer.body.text).toBe('prod-web: protected, 2 s behind');
      expect(JSON.stringify(answer.body.blocks)).toContain('prod-web  2s');
      expect(plane.seen).toMatchObject([
        { verb: 'status', actor: 'slack:U0ALICE', channel: 'slack:C0OPS', surface: 'slack' },
      ]);
    });

    it('refuses forged, stale, future and replayed requests; nothing reaches the engine', async () => {
      const body = slack.slashCommand('status');
      const now = Math.floor(Date.now() / 1000);
      expect(
        (await slack.send(events, body, { signature: slack.sign(body, now, 'not-the-secret') }))
          .status,
      ).toBe(401);
      expect((await slack.send(events, body, { signature: '' })).status).toBe(401);
      expect((await slack.send(events, body, { timestamp: now - 6 * 60 })).status).toBe(401);
      expect((await slack.send(events, body, { timestamp: now + 10 * 60 })).status).toBe(401);
      expect(plane.seen).toEqual([]);
      expect((await slack.send(events, body, { timestamp: now })).status).toBe(200);
      expect((await slack.send(events, body, { timestamp: now })).status).toBe(401);
      await waitFor('the one command', () => plane.seen.length === 1);
    });

    it("never runs a command twice for Slack's retries or a duplicate delivery", async () => {
      const body = slack.slashCommand('status');
      const now = Math.floor(Date.now() / 1000);
      expect((await slack.send(events, body, { timestamp: now })).status).toBe(200);
      // Slack trying again: the same request with X-Slack-Retry-Num, and a fresh signature of it.
      expect((await slack.send(events, body, { timestamp: now, retryNum: 1 })).status).toBe(200);
      expect((await slack.send(events, body, { timestamp: now + 1, retryNum: 2 })).status).toBe(
        200,
      );
      await waitFor('the first command', () => plane.seen.length === 1);
      const trigger = new URLSearchParams(body).get('trigger_id');
      await waitFor('its answer', () => slack.responses.some((r) => r.id === trigger));
      await new Promise((r) => setTimeout(r, 300));
      expect(plane.seen).toHaveLength(1);
      expect(slack.responses.filter((r) => r.id === trigger)).toHaveLength(1);
    });

    it('answers bad input privately with the grammar, without asking the engine', async () => {
      const cases: [string, string][] = [
        ['falover prod-web', 'Unknown command "falover". Did you mean `failover`?'],
        ['drill', '`drill` needs an app.'],
        ['drill prod-web;reboot', 'is not an app name'],
        ['drill прод', 'is not an app name'],
        [`status ${'x'.repeat(10_000)}`, 'the limit is 1000'],
      ];
      for (const [text, expected] of cases) {
        const body = slack.slashCommand(text);
        expect((await slack.send(events, body)).status).toBe(200);
        const trigger = new URLSearchParams(body).get('trigger_id');
        const r = await waitFor(`the answer to ${text.slice(0, 30)}`, () =>
          slack.responses.find((x) => x.id === trigger),
        );
        expect(r.body.response_type).toBe('ephemeral');
        expect(String(r.body.text)).toContain(expected);
      }
      expect(plane.seen).toEqual([]);
    });

    it('posts one message per operation, updates it from notices, details in its thread', async () => {
      const body = slack.slashCommand('failover prod-web', { channel: 'C0PROD' });
      await slack.send(events, body);
      const card = await waitFor('the approval card', () => slack.channelMessages('C0PROD')[0]);
      expect(card.text).toBe('Failover of prod-web needs 2 approvals from sre-oncall: A-1');
      const buttons = (
        card.blocks.find((b) => b.type === 'actions') as { elements: { value: string }[] }
      ).elements;
      expect(buttons.map((b) => b.value)).toEqual(['approve A-1', 'reject A-1']);
      await waitFor('details in the thread', () => slack.threadOf('C0PROD', card.ts)[0]);

      const notice = (
        time: number,
        summary: string,
        extra: Partial<Notice> = {},
      ): Omit<Notice, 'id'> => ({
        kind: 'approval.updated',
        key: 'op:op-1',
        app: 'prod-web',
        targets: ['slack:C0PROD', 'dingtalk:cid-elsewhere'],
        severity: 'info',
        summary,
        time,
        ...extra,
      });
      await publishNotice(
        cmd,
        notice(Date.now(), 'Failover of prod-web: 1 of 2 approvals (bob)'),
        prefix,
      );
      await waitFor('the card updated', () => card.updates === 1 && card.text.includes('1 of 2'));
      await publishNotice(
        cmd,
        notice(Date.now() + 1, 'Failover of prod-web finished: RTO 41 s, point 17', {
          kind: 'operation.finished',
          details: ['materialise 12 s', 'start 20 s', 'health 9 s'],
        }),
        prefix,
      );
      await waitFor('the result', () => card.text.includes('RTO 41 s'));
      await waitFor('step details in the thread', () =>
        slack.threadOf('C0PROD', card.ts).some((m) => m.text.includes('health 9 s')),
      );
      // A late, older notice does not roll the message back.
      await publishNotice(cmd, notice(1, 'Failover of prod-web: 1 of 2 approvals (stale)'), prefix);
      await publishNotice(cmd, { ...notice(Date.now() + 2, 'marker'), key: 'op:other' }, prefix);
      await waitFor('the marker notice', () =>
        slack.channelMessages('C0PROD').some((m) => m.text === 'marker'),
      );
      expect(card.text).toContain('RTO 41 s');
      expect(slack.channelMessages('C0PROD')).toHaveLength(2);
    });

    it('takes @Lifeboat mentions like /dr: once per event, answers in the thread, refusals privately, operations as their own message', async () => {
      const body = slack.mention('status', { channel: 'C0MENTION' });
      expect((await slack.send(events, body)).status).toBe(200);
      const ts = (JSON.parse(body) as { event: { ts: string } }).event.ts;
      const answer = await waitFor(
        'the answer in the thread',
        () => slack.threadOf('C0MENTION', ts)[0],
      );
      expect(answer.text).toBe('prod-web: protected, 2 s behind');
      expect(plane.seen).toMatchObject([
        { verb: 'status', actor: 'slack:U0ALICE', channel: 'slack:C0MENTION', surface: 'slack' },
      ]);
      // Slack delivering the same event again: acknowledged, and nothing runs twice.
      expect((await slack.send(events, body, { retryNum: 1 })).status).toBe(200);

      const typo = slack.mention('falover prod-web', { channel: 'C0MENTION', user: 'U0CAROL' });
      expect((await slack.send(events, typo)).status).toBe(200);
      const eph = await waitFor('the private answer', () =>
        slack.ephemerals.find((c) => c.args.user === 'U0CAROL'),
      );
      expect(eph.args.channel).toBe('C0MENTION');
      expect(String(eph.args.text)).toContain('Did you mean `failover`?');

      await slack.send(events, slack.mention('failover prod-web', { channel: 'C0MENTION2' }));
      const card = await waitFor(
        'the operation message',
        () => slack.channelMessages('C0MENTION2')[0],
      );
      expect(card.text).toContain('Failover of prod-web needs 2 approvals');
      await new Promise((r) => setTimeout(r, 300));
      expect(plane.seen.map((s) => s.verb)).toEqual(['status', 'failover']);
      expect(slack.threadOf('C0MENTION', ts)).toHaveLength(1);
    });

    it('answers a press by someone not allowed privately, and changes nothing', async () => {
      await slack.send(
        events,
        slack.slashCommand('failover prod-web', { channel: 'C0PRESS', user: 'U0ALICE' }),
      );
      const card = await waitFor('the card', () => slack.channelMessages('C0PRESS')[0]);
      const before = JSON.stringify(card);
      const press = slack.buttonPress(card, 0, { user: 'U0ALICE' });
      expect((await slack.send(events, press)).status).toBe(200);
      const eph = await waitFor('the private refusal', () =>
        slack.ephemerals.find((e) => e.args.user === 'U0ALICE' && e.args.channel === 'C0PRESS'),
      );
      expect(eph.args.text).toBe('You asked for this failover, so you cannot approve it.');
      expect(JSON.stringify(card)).toBe(before);
      expect(plane.seen.filter((c) => c.verb === 'approve')).toMatchObject([
        { actor: 'slack:U0ALICE', args: { id: 'A-1' } },
      ]);
      // The same press delivered twice runs once.
      await slack.send(events, press, { retryNum: 1 });
      const bobPress = slack.buttonPress(card, 0, { user: 'U0BOB', trigger: 'trig-bob-1' });
      await slack.send(events, bobPress);
      await slack.send(events, bobPress, { timestamp: Math.floor(Date.now() / 1000) + 1 });
      await waitFor("bob's confirmation", () =>
        slack.ephemerals.some((e) => e.args.user === 'U0BOB'),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(plane.seen.filter((c) => c.verb === 'approve').map((c) => c.actor)).toEqual([
        'slack:U0ALICE',
        'slack:U0BOB',
      ]);
    });

    it('refuses to start with a bot token Slack does not take, without repeating the token', async () => {
      const wrong = 'xoxb-wrong-0123456789';
      const other = await SlackSurface.create({
        plane,
        credentials: {
          mode: 'http',
          botToken: wrong,
          signingSecret: slack.signingSecret,
          apiUrl: slack.apiUrl,
        },
        redis: cmd,
        prefix: 'wrong:',
      });
      const err = await other.start().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(
        /^Slack refused SLACK_BOT_TOKEN \(invalid_auth\)\. To resolve, set it to/,
      );
      expect(err?.message).not.toContain(wrong);
    });

    it("waits out Slack's ratelimited answer as its Retry-After asks, then delivers", async () => {
      slack.rateLimit(1, 1);
      await publishNotice(
        cmd,
        {
          kind: 'rpo.breach',
          key: 'alert:AL-1',
          targets: ['slack:C0ALERTS'],
          severity: 'critical',
          summary: 'RPO breach: prod-web is 94 s behind (objective 60 s)',
          time: Date.now(),
          actions: [{ kind: 'ack', label: 'Acknowledge', words: 'ack AL-1' }],
        },
        prefix,
      );
      const alert = await waitFor('the alert', () => slack.channelMessages('C0ALERTS')[0]);
      expect(alert.text).toContain('RPO breach');
      const posts = slack.callsOf('chat.postMessage').filter((c) => c.args.channel === 'C0ALERTS');
      expect(posts).toHaveLength(2);
      expect(posts[0]?.args.rateLimited).toBe(true);
      expect((posts[1]?.at ?? 0) - (posts[0]?.at ?? 0)).toBeGreaterThanOrEqual(950);
    });
  },
);
