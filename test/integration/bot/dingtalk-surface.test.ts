import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DingTalkSurface } from '../../../bot/dingtalk/dingtalk-surface.js';
import { publishNotice } from '../../../bot/notice-reader.js';
import { controlKeys, type Notice } from '../../../engine/contract.js';
import { DingTalkGateway } from '../../fakes/dingtalk-gateway.js';
import { DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { TablePlane } from '../../helpers/table-plane.js';
import { waitFor } from '../../helpers/wait-for.js';

const missing = redisUnavailable();

describe.skipIf(missingFeature(missing, 'dingtalk-surface.test.ts'))(
  'DingTalk surface (real DWClient, gateway and OpenAPI emulators, real Redis)',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let blocking: Redis;
    let gateway: DingTalkGateway;
    let openapi: DingTalkOpenApi;
    let surface: DingTalkSurface;
    let plane: TablePlane;
    const prefix = `d${Date.now()}:`;

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      blocking = new Redis(redis.url);
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
          robotCode: gateway.clientId,
          cardTemplateId: 'lifeboat-card.schema',
        },
        redis: cmd,
        noticeRedis: blocking,
        prefix,
        adminTargets: ['slack:C0ADMIN'],
        downNoticeAfterMs: 1500,
      });
      await surface.start();
      await waitFor('the stream', () => surface.connected && gateway.connections === 1);
    });

    afterAll(async () => {
      await surface?.stop();
      await gateway?.stop();
      await openapi?.stop();
      cmd?.disconnect();
      blocking?.disconnect();
      await redis?.stop();
    });

    beforeEach(() => {
      plane.seen.length = 0;
    });

    it('refuses to start with credentials DingTalk does not take, without repeating the secret', async () => {
      const wrong = await DingTalkSurface.create({
        plane,
        credentials: {
          clientId: gateway.clientId,
          clientSecret: 'wrong-secret-0123',
          apiUrl: openapi.url,
          gatewayUrl: gateway.openUrl,
          robotCode: gateway.clientId,
        },
        redis: cmd,
        prefix: 'wrong:',
      });
      const err = await wrong.start().then(
        () => undefined,
        (e: Error) => e,
      );
      await wrong.stop();
      expect(err?.message).toMatch(
        /^DingTalk refused DINGTALK_CLIENT_ID \/ DINGTALK_CLIENT_SECRET \(invalidClientIdOrSecret\)\. To resolve/,
      );
      expect(err?.message).not.toContain('wrong-secret-0123');
    });

    it('without a card template, shows notices as markdown with the words to type', async () => {
      const plain = await DingTalkSurface.create({
        plane,
        credentials: {
          clientId: gateway.clientId,
          clientSecret: gateway.clientSecret,
          apiUrl: openapi.url,
          gatewayUrl: gateway.openUrl,
          robotCode: gateway.clientId,
        },
        redis: cmd,
        prefix: 'plain:',
      });
      await plain.postNotice({
        id: '1-0',
        kind: 'approval.requested',
        key: 'op:op-9',
        targets: ['dingtalk:cid-plain', 'slack:C1', 'dingtalk:user:staff-ops'],
        severity: 'warning',
        summary: 'sam asks to failover web: 2 approvals needed (A-9) [see](http://evil.example)',
        actions: [
          { kind: 'approve', label: 'Approve', words: 'approve A-9' },
          { kind: 'reject', label: 'Reject', words: 'reject A-9' },
        ],
        time: 1,
      });
      const group = openapi.messages.find((m) => m.kind === 'group' && m.to === 'cid-plain');
      expect(group?.text).toBe(
        '⚠️ sam asks to failover web: 2 approvals needed (A-9) &#91;see&#93;(http://evil.example)\n\nApprove: `dr approve A-9`  \nReject: `dr reject A-9`',
      );
      expect(openapi.messages.find((m) => m.kind === 'private' && m.to === 'staff-ops')?.text).toBe(
        group?.text,
      );
      expect(openapi.cards.size).toBe(0);
    });

    it('opens the stream with its credentials and subscriptions, and answers pings', async () => {
      expect(gateway.opens[0]?.clientId).toBe(gateway.clientId);
      expect(JSON.stringify(gateway.opens[0]?.subscriptions)).toContain(
        '/v1.0/card/instances/callback',
      );
      expect(JSON.stringify(gateway.opens[0]?.subscriptions)).toContain(
        '/v1.0/im/bot/messages/get',
      );
      const ping = gateway.ping();
      await waitFor('the ping echoed', () => gateway.ackOf(ping));
      expect(gateway.badAcks).toEqual([]);
    });

    it('answers `dr status` through the session webhook, acking the frame', async () => {
      const hook = openapi.sessionWebhook();
      const id = gateway.robotMessage('dr status', { sessionWebhook: hook });
      await waitFor('the ack', () => gateway.ackOf(id));
      const reply = await waitFor('the reply', () =>
        openapi.messages.find((m) => m.to === new URL(hook).pathname),
      );
      expect(reply.text).toBe('prod-web: protected, 2 s behind');
      expect(plane.seen).toMatchObject([
        {
          verb: 'status',
          actor: 'dingtalk:staff-alice',
          channel: 'dingtalk:cid-ops',
          surface: 'dingtalk',
        },
      ]);
      // `/dr` and the bare words work too; an expired webhook falls back to the robot's group message.
      const old = openapi.sessionWebhook();
      openapi.expire(old);
      gateway.robotMessage('/dr status', {
        sessionWebhook: old,
        sessionWebhookExpiredTime: Date.now() - 1000,
        conversationId: 'cid-late',
      });
      await waitFor('the group message', () =>
        openapi.messages.find((m) => m.kind === 'group' && m.to === 'cid-late'),
      );
      expect(gateway.badAcks).toEqual([]);
    });

    it('answers bad input privately with the grammar; nothing reaches the engine', async () => {
      const cases: [string, string][] = [
        ['dr falover prod-web', 'Did you mean `failover`?'],
        ['dr drill', '`drill` needs an app.'],
        ['dr drill $(reboot)', 'is not an app name'],
        ['dr drill 生产', 'is not an app name'],
        [`dr status ${'y'.repeat(10_000)}`, 'the limit is 1000'],
      ];
      for (const [text, expected] of cases) {
        const staffId = `staff-${Math.random().toString(36).slice(2)}`;
        gateway.robotMessage(text, { staffId, sessionWebhook: openapi.sessionWebhook() });
        const m = await waitFor(`the answer to ${text.slice(0, 30)}`, () =>
          openapi.messages.find((x) => x.kind === 'private' && x.to === staffId),
        );
        expect(m.text.replace(/\\/g, '')).toContain(expected);
      }
      expect(plane.seen).toEqual([]);
    });

    it('runs a message delivered twice only once', async () => {
      const hook = openapi.sessionWebhook();
      const a = gateway.robotMessage('dr status', { msgId: 'msg-dup-1', sessionWebhook: hook });
      const b = gateway.robotMessage('dr status', { msgId: 'msg-dup-1', sessionWebhook: hook });
      await waitFor('both acked', () => gateway.ackOf(a) && gateway.ackOf(b));
      await waitFor('the reply', () =>
        openapi.messages.some((m) => m.to === new URL(hook).pathname),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(plane.seen).toHaveLength(1);
      expect(openapi.messages.filter((m) => m.to === new URL(hook).pathname)).toHaveLength(1);
    });

    it('puts an approval on a card; a press by the requester is refused privately and changes nothing', async () => {
      const tokens = openapi.tokens.length;
      gateway.robotMessage('dr failover prod-web', {
        conversationId: 'cid-prod',
        sessionWebhook: openapi.sessionWebhook(),
      });
      const card = await waitFor('the card', () => openapi.cardsIn('cid-prod')[0]);
      expect(card.params.summary).toBe(
        'Failover of prod-web needs 2 approvals from sre-oncall: A-1',
      );
      expect(JSON.parse(card.params.actions ?? '[]')).toEqual([
        { label: 'Approve', words: 'approve A-1', style: 'primary' },
        { label: 'Reject', words: 'reject A-1', style: 'danger' },
      ]);
      const press = gateway.cardPress(card.outTrackId, 'approve A-1', {
        userId: 'staff-alice',
        spaceId: 'cid-prod',
      });
      const ack = await waitFor('the callback answer', () => gateway.ackOf(press));
      expect(ack.data).toEqual({
        response: {
          cardUpdateOptions: { updatePrivateDataByKey: true },
          userPrivateData: {
            cardParamMap: { feedback: 'You asked for this failover, so you cannot approve it.' },
          },
        },
      });
      expect(card.updates).toBe(0);
      expect(plane.seen.at(-1)).toMatchObject({
        verb: 'approve',
        actor: 'dingtalk:staff-alice',
        args: { id: 'A-1' },
      });
      // The engine's notice, not the press, moves the card on.
      const notice: Omit<Notice, 'id'> = {
        kind: 'approval.updated',
        key: 'op:op-1',
        targets: ['dingtalk:cid-prod'],
        severity: 'info',
        summary: 'Failover of prod-web: 1 of 2 approvals (bob)',
        time: Date.now(),
      };
      await publishNotice(cmd, notice, prefix);
      await waitFor(
        'the card updated',
        () => card.updates === 1 && card.params.summary?.includes('1 of 2'),
      );
      expect(openapi.tokens).toHaveLength(tokens); // the access token of start(), cached across every call
    });

    it('keeps a private chat private: its card and notices go to the person, not a group', async () => {
      gateway.robotMessage('failover prod-web', {
        staffId: 'staff-pat',
        conversationType: '1',
        conversationId: 'cid-private-pat',
        sessionWebhook: openapi.sessionWebhook(),
      });
      const card = await waitFor('the private card', () => openapi.privateCardsOf('staff-pat')[0]);
      expect(card.params.summary).toContain('needs 2 approvals');
      expect(plane.seen.at(-1)).toMatchObject({
        channel: 'dingtalk:user:staff-pat',
        actor: 'dingtalk:staff-pat',
      });
      await publishNotice(
        cmd,
        {
          kind: 'approval.updated',
          key: 'op:op-1',
          targets: ['dingtalk:user:staff-pat'],
          severity: 'info',
          summary: 'tom approved (1 of 2)',
          time: Date.now(),
        },
        prefix,
      );
      await waitFor(
        'the private card updated',
        () => card.updates === 1 && card.params.summary === 'tom approved (1 of 2)',
      );
      expect(openapi.cardsIn('cid-private-pat')).toEqual([]);
      expect(openapi.refused.filter((r) => r.path.startsWith('/v1.0/card'))).toEqual([]);
    });

    it('keeps working when the stream drops while a card is pending; a re-pushed press runs once', async () => {
      gateway.robotMessage('dr failover prod-web', {
        conversationId: 'cid-drop',
        sessionWebhook: openapi.sessionWebhook(),
      });
      const card = await waitFor('the card', () => openapi.cardsIn('cid-drop')[0]);
      const opens = gateway.opens.length;
      gateway.drop();
      await waitFor(
        'the reconnect',
        () => gateway.opens.length > opens && surface.connected && gateway.connections === 1,
      );
      const press = gateway.cardPress(card.outTrackId, 'approve A-1', {
        userId: 'staff-bob',
        spaceId: 'cid-drop',
        messageId: 'cb-repushed-1',
      });
      const ack = await waitFor('the answer', () => gateway.ackOf(press));
      expect(JSON.stringify(ack.data)).toContain('Approved A-1 (1 of 2) by dingtalk:staff-bob');
      // DingTalk pushes the same callback again (its answer was lost): answered, not run again.
      gateway.cardPress(card.outTrackId, 'approve A-1', {
        userId: 'staff-bob',
        spaceId: 'cid-drop',
        messageId: 'cb-repushed-1',
      });
      await waitFor(
        'the second answer',
        () => gateway.acks.filter((a) => a.messageId === 'cb-repushed-1').length === 2,
      );
      expect(plane.seen.filter((c) => c.verb === 'approve')).toHaveLength(1);
      expect(gateway.badAcks).toEqual([]);
    });

    it('tells the admin channel once when the stream stays down, and when it is back', async () => {
      const key = controlKeys(prefix).notices;
      const notices = async (): Promise<Notice[]> =>
        ((await cmd.xrange(key, '-', '+')) as [string, string[]][])
          .map(([, f]) => JSON.parse(f[1] ?? '{}') as Notice)
          .filter((n) => n.kind === 'surface.down');
      const before = (await notices()).length;
      gateway.refuseOpen = true;
      gateway.drop();
      const down = await waitFor('the down notice', async () => (await notices())[before]);
      expect(down).toMatchObject({
        key: 'surface:dingtalk',
        targets: ['slack:C0ADMIN'],
        severity: 'critical',
      });
      expect(down.summary).toMatch(/^DingTalk stream is down for \d+ s/);
      gateway.refuseOpen = false;
      const back = await waitFor(
        'the back notice',
        async () => (await notices())[before + 1],
        20_000,
      );
      expect(back.summary).toMatch(/^DingTalk stream is back after \d+ s\.$/);
      expect(back.severity).toBe('info');
      expect(await notices()).toHaveLength(before + 2);
    });
  },
);
