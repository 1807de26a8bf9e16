import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DingTalkApi } from '../../../bot/dingtalk/dingtalk-api.js';
import { DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';

describe('DingTalk OpenAPI client against the emulator', () => {
  const key = 'ding-key';
  const secret = 'not-a-real-secret-0123456789';
  let openapi: DingTalkOpenApi;
  let clock = 1_000_000;
  let api: DingTalkApi;

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
    api = new DingTalkApi(credentials, fetch, () => clock);
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
});
