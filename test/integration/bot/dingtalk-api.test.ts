import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DingTalkApi } from '../../../bot/dingtalk/dingtalk-api.js';
import { DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';

describe('DingTalk OpenAPI client against the emulator', () => {
  const key = 'ding-key';
  const secret = 'not-a-real-secret-0123456789';
  let openapi: DingTalkOpenApi;
  let clock = 1_000_000;
  let api: DingTalkApi;
  const waits: number[] = [];

  beforeAll(async () => {
    openapi = new DingTalkOpenApi(key, secret, 120);
    await openapi.start();
    const credentials = {
      clientId: key,
      clientSecret: secret,
      apiUrl: openapi.url,
      gatewayUrl: 'http://unused',
      robotCode: key,
      cardTemplateId: 'tpl',
    };
    api = new DingTalkApi(credentials, {
      now: () => clock,
      // The waits are recorded, not slept: the test checks the schedule, not the clock.
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
  });

  afterAll(async () => {
    await openapi?.stop();
  });

  it('fetches the access token once and reuses it until a minute before it expires', async () => {
    await Promise.all([
      api.sendGroupMarkdown('cid-1', 't', 'one'),
      api.sendGroupMarkdown('cid-1', 't', 'two'),
    ]);
    await api.sendPrivateMarkdown(['staff-1'], 't', 'three');
    expect(openapi.tokens).toHaveLength(1);
    clock += 59_000; // 120 s tokens are renewed after 60 s
    await api.sendGroupMarkdown('cid-1', 't', 'four');
    expect(openapi.tokens).toHaveLength(1);
    clock += 2000;
    await api.sendGroupMarkdown('cid-1', 't', 'five');
    expect(openapi.tokens).toHaveLength(2);
    expect(openapi.messages.map((m) => m.text)).toEqual(['one', 'two', 'three', 'four', 'five']);
  });

  it('forgets a token the server no longer takes, and the next call gets a new one', async () => {
    openapi.revokeTokens();
    await expect(api.sendGroupMarkdown('cid-1', 't', 'lost')).rejects.toThrow(
      /answered 401 InvalidAuthentication/,
    );
    await api.sendGroupMarkdown('cid-1', 't', 'after');
    expect(openapi.tokens).toHaveLength(1);
    expect(openapi.messages.at(-1)?.text).toBe('after');
  });

  it('creates and updates a card; errors name the API, never the secret', async () => {
    await api.createCard(
      'lb-1',
      { kind: 'group', id: 'cid-9' },
      {
        title: 'Lifeboat',
        summary: 's',
        details: '',
        severity: 'info',
        actions: '[]',
      },
    );
    await api.updateCard('lb-1', {
      title: 'Lifeboat',
      summary: 's2',
      details: '',
      severity: 'info',
      actions: '[]',
    });
    expect(openapi.cards.get('lb-1')).toMatchObject({
      openSpaceId: 'dtv1.card//IM_GROUP.cid-9',
      updates: 1,
      params: { summary: 's2' },
    });
    const err = await api
      .updateCard('lb-missing', {
        title: '',
        summary: '',
        details: '',
        severity: 'info',
        actions: '[]',
      })
      .catch((e: Error) => e);
    expect(String(err)).toContain('/v1.0/card/instances answered 400 card.notFound');
    const wrong = new DingTalkApi({
      clientId: key,
      clientSecret: 'wrong-secret-value',
      apiUrl: openapi.url,
      gatewayUrl: 'http://unused',
      robotCode: key,
    });
    const e2 = await wrong.sendGroupMarkdown('cid', 't', 'x').catch((e: Error) => e);
    expect(String(e2)).toContain('invalidClientIdOrSecret');
    expect(String(e2)).not.toContain('wrong-secret-value');
  });

  it('waits out throttling (QPS limits, a webhook sending too fast) and delivers; gives up after three waits', async () => {
    waits.length = 0;
    const before = openapi.messages.length;
    openapi.throttle(2);
    await api.sendGroupMarkdown('cid-busy', 't', 'delivered after two waits');
    expect(waits).toEqual([1000, 3000]);
    expect(openapi.messages.slice(before).map((m) => m.text)).toEqual([
      'delivered after two waits',
    ]);

    waits.length = 0;
    const hook = openapi.sessionWebhook();
    openapi.throttle(1);
    await api.replyWebhook(hook, 't', 'reply after one wait');
    expect(waits).toEqual([1000]);
    expect(openapi.messages.at(-1)?.text).toBe('reply after one wait');

    waits.length = 0;
    openapi.throttle(10);
    const err = await api.sendGroupMarkdown('cid-busy', 't', 'never').catch((e: Error) => e);
    expect(waits).toEqual([1000, 3000, 9000]);
    expect(String(err)).toContain('403 Forbidden.AccessDenied.QpsLimitForApi');
    openapi.throttle(0);
    await api.sendGroupMarkdown('cid-busy', 't', 'and the next call goes through');
    expect(openapi.messages.at(-1)?.text).toBe('and the next call goes through');
  });
  it('sends an undelivered card to the space as a message that says so, and its updates too', async () => {
    openapi.refuseCardsIn('dtv1.card//IM_GROUP.cid-no-robot');
    const card = {
      title: 'Lifeboat: drill shop',
      summary: 'drill shop started',
      details: 'point p-1',
      severity: 'info',
      actions: '[]',
    };
    const before = openapi.messages.length;
    const delivered = await api.createCard(
      'lb-undelivered',
      { kind: 'group', id: 'cid-no-robot' },
      card,
    );
    expect(delivered).toEqual({ delivered: false, reason: 'robot is not in the group' });
    expect(openapi.cards.get('lb-undelivered')?.delivered).toBe(false);
    const sent = openapi.messages.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ kind: 'group', to: 'cid-no-robot', title: card.title });
    expect(sent[0]?.text).toContain('drill shop started');
    expect(sent[0]?.text).toContain(
      'Sent as a message: the card could not be delivered here (robot is not in the group).',
    );
    await api.updateCard('lb-undelivered', { ...card, summary: 'drill shop passed' });
    expect(openapi.messages.at(-1)).toMatchObject({ kind: 'group', to: 'cid-no-robot' });
    expect(openapi.messages.at(-1)?.text).toContain('drill shop passed');
    expect(openapi.cards.get('lb-undelivered')?.updates).toBe(0);
    // A delivered card stays a card.
    expect(await api.createCard('lb-fine', { kind: 'group', id: 'cid-ok' }, card)).toEqual({
      delivered: true,
    });
  });

  it('sends flow-controlled private messages again after the waits and reports unknown staff', async () => {
    waits.length = 0;
    openapi.flowControl('staff-busy', 2);
    openapi.invalidate('staff-gone');
    const before = openapi.messages.length;
    const result = await api.sendPrivateMarkdown(
      ['staff-ok', 'staff-busy', 'staff-gone'],
      't',
      'hi',
    );
    expect(result).toEqual({ invalid: ['staff-gone'], undelivered: [] });
    expect(waits).toEqual([1000, 3000]);
    expect(openapi.messages.slice(before).map((m) => m.to)).toEqual(['staff-ok', 'staff-busy']);

    // Still held back after the last wait: reported, not retried for ever.
    waits.length = 0;
    openapi.flowControl('staff-busy', 10);
    const partial = await api.sendPrivateMarkdown(['staff-ok', 'staff-busy'], 't', 'again');
    expect(partial).toEqual({ invalid: [], undelivered: ['staff-busy'] });
    expect(waits).toEqual([1000, 3000, 9000]);
    openapi.flowControl('staff-busy', 0);

    // Nobody got it: an error naming who and why.
    const err = await api.sendPrivateMarkdown(['staff-gone'], 't', 'lost').catch((e: Error) => e);
    expect(String(err)).toContain('the message reached nobody (unknown: staff-gone');
  });
});
