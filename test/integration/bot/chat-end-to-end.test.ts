import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { DingTalkGateway } from '../../fakes/dingtalk-gateway.js';
import { DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';
import { SlackEmulator, type SlackMessage } from '../../fakes/slack-web-api.js';
import { freePort, type TestHome, testHome, updateConfig } from '../../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../../helpers/processes.js';
import { killVolumeServers, protectServedApp, recoveryEnv } from '../../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

/**
 * End to end on Slack and DingTalk: a real `dr serve` (engine + both surfaces), `dr gateway`
 * publishing replication state, `dr worker` on the local provider, `dr agent`, real Redis; Slack's
 * and DingTalk's side played by the emulators.
 */
const problem = redisUnavailable();

const PEOPLE = {
  sam: { ids: ['slack:USAM', 'dingtalk:staff-sam'], groups: ['sre-oncall'] },
  tom: { ids: ['slack:UTOM', 'dingtalk:staff-tom'], groups: ['sre-oncall'] },
  uma: { ids: ['slack:UUMA', 'dingtalk:staff-uma'], groups: ['sre-oncall'] },
};

describe('chat end to end: dr serve with the real engine, a worker and an agent', () => {
  let t: TestHome;
  let redis: TestRedis;
  let slack: SlackEmulator;
  let gateway: DingTalkGateway;
  let openapi: DingTalkOpenApi;
  let env: NodeJS.ProcessEnv;
  let events: string;
  let serve: DrProcess;
  let agent: DrProcess;
  let worker: DrProcess;

  async function protect(name: string): Promise<void> {
    await protectServedApp(t, name, { extra: ['--tier', 'prod'] });
  }

  beforeAll(async () => {
    if (problem) return; // each test says why it skips
    redis = await startRedis();
    t = await testHome();
    slack = new SlackEmulator();
    await slack.start();
    gateway = new DingTalkGateway();
    await gateway.start();
    openapi = new DingTalkOpenApi(gateway.clientId, gateway.clientSecret);
    await openapi.start();
    env = {
      ...recoveryEnv(t.home, redis.url, 'e').env,
      DR_LOG_LEVEL: 'info',
      SLACK_BOT_TOKEN: slack.token,
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_API_URL: slack.apiUrl,
      DINGTALK_CLIENT_ID: gateway.clientId,
      DINGTALK_CLIENT_SECRET: gateway.clientSecret,
      DINGTALK_API_URL: openapi.url,
      DINGTALK_GATEWAY_URL: gateway.openUrl,
      DINGTALK_CARD_TEMPLATE_ID: 'lifeboat-card.schema',
    };
    const g = startDr(['gateway'], env);
    await g.waitFor(/publishing replication state/);
    for (const app of ['prod-web', 'prod-api', 'shop']) await protect(app);
    await updateConfig(t.home, (doc) => {
      doc.setIn(['people', 'sam'], doc.createNode(PEOPLE.sam));
      doc.setIn(['people', 'tom'], doc.createNode(PEOPLE.tom));
      doc.setIn(['people', 'uma'], doc.createNode(PEOPLE.uma));
      doc.setIn(['channels', 'alerts'], doc.createNode(['slack:CALERTS', 'dingtalk:cid-alerts']));
      doc.setIn(
        ['channels', 'apps'],
        doc.createNode({ 'prod-web': ['slack:CWEB'], 'prod-api': ['dingtalk:cid-api'] }),
      );
      doc.setIn(['apps', 'prod-web', 'rpoObjective'], '1h');
      doc.setIn(['apps', 'prod-api', 'rpoObjective'], '1h');
      doc.setIn(['apps', 'shop', 'rpoObjective'], '3s');
    });
    // Alert policies are data: this home's alert quickly, so the test need not wait minutes.
    const alerts = join(t.home, 'policies', 'alerts.yaml');
    const text = await readFile(alerts, 'utf8');
    await writeFile(alerts, text.replace('for: 1m', 'for: 1s').replace('for: 2m', 'for: 1h'));

    agent = startDr(['agent', '--app', 'shop'], env);
    worker = startDr(['worker', '--concurrency', '2', '--lock-duration', '2s'], env);
    await worker.waitFor(/worker ready/);
    const listen = `127.0.0.1:${await freePort()}`;
    serve = startDr(['serve', '--listen', listen], env);
    await serve.waitFor(/DingTalk: on/, 30_000);
    events = `http://${listen}/slack/events`;
    await waitFor('the DingTalk stream', () => gateway.connections === 1);
  }, 180_000);

  afterAll(async () => {
    await serve?.stop();
    await stopAll();
    await killVolumeServers(t?.dir);
    await slack?.stop();
    await gateway?.stop();
    await openapi?.stop();
    await redis?.stop();
    await t?.cleanup();
  });

  /** What the platforms saw and what serve logged, printed when a test fails. */
  function explainFailure(): void {
    onTestFailed(() => {
      const messages = [...slack.messages.values()].map(
        (m) => `${m.channel} ${m.ts} ${m.threadTs ?? ''} [${m.updates}] ${m.text}`,
      );
      const cards = [...openapi.cards.values()].map(
        (c) => `${c.openSpaceId} [${c.updates}] ${c.params.summary}`,
      );
      process.stderr.write(
        `--- slack messages\n${messages.join('\n')}\n--- ephemerals\n${slack.ephemerals.map((e) => `${e.args.user}: ${e.args.text}`).join('\n')}\n--- responses\n${slack.responses.map((r) => JSON.stringify(r.body.text)).join('\n')}\n--- cards\n${cards.join('\n')}\n--- dingtalk messages\n${openapi.messages.map((m) => `${m.kind} ${m.to} ${m.text}`).join('\n')}\n--- serve\n${serve.output().slice(-6000)}\n--- worker\n${worker.output().slice(-6000)}\n`,
      );
    });
  }

  const buttons = (m: SlackMessage) =>
    (
      (m.blocks.find((b) => b.type === 'actions') as { elements?: { value: string }[] } | undefined)
        ?.elements ?? []
    ).map((e) => e.value);

  const fieldsOf = (m: SlackMessage) =>
    m.blocks.flatMap((b) =>
      b.type === 'section' && Array.isArray(b.fields)
        ? (b.fields as { text: string }[]).map((f) => f.text.replace(/\*/g, ''))
        : [],
    );
  const confirmOf = (m: SlackMessage, value: string) =>
    (
      (
        m.blocks.find((b) => b.type === 'actions') as
          | { elements?: { value: string; confirm?: Record<string, unknown> }[] }
          | undefined
      )?.elements ?? []
    ).find((e) => e.value === value)?.confirm;

  it('Slack: failover → approval card → requester refused → two on-call approvals → progress → RTO', {
    timeout: 150_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    expect(serve.output()).toContain('Slack: on (HTTP receiver at /slack/events)');
    expect(
      (
        await slack.send(
          events,
          slack.slashCommand('failover prod-web --reason web zone is down', {
            user: 'USAM',
            channel: 'CWEB',
          }),
        )
      ).status,
    ).toBe(200);
    const card = await waitFor('the approval card', () =>
      slack.channelMessages('CWEB').find((m) => buttons(m).some((b) => b.startsWith('approve '))),
    );
    expect(card.text).toMatch(/approval/i);
    const approval =
      buttons(card)
        .find((b) => b.startsWith('approve '))
        ?.split(' ')[1] ?? '';
    expect(buttons(card)).toEqual(
      expect.arrayContaining([`approve ${approval}`, `reject ${approval}`]),
    );
    // The card: the facts as fields, and Approve asks first.
    expect(fieldsOf(card).map((f) => f.split('\n')[0])).toEqual([
      'Asked by',
      'Source now',
      'Point',
      'Data loss',
      'Last drill',
      'Expected RTO',
      'Fencing',
      'Approvals',
      'Expires',
    ]);
    expect(fieldsOf(card)[0]).toBe('Asked by\nsam: "web zone is down"');
    expect(fieldsOf(card)[2]).toMatch(/^Point\nlatest: #\d+ (app|crash)-consistent/);
    expect(fieldsOf(card)[7]).toBe('Approvals\n0 of 2 (from sre-oncall, not the requester)');
    expect(confirmOf(card, `approve ${approval}`)?.title).toEqual({
      type: 'plain_text',
      text: 'Approve failover of prod-web?',
    });

    await slack.send(events, slack.buttonPress(card, 0, { user: 'USAM' }));
    const refusal = await waitFor('the private refusal', () =>
      slack.ephemerals.find((e) => e.args.user === 'USAM'),
    );
    expect(String(refusal.args.text)).toContain('You asked for this failover');

    await slack.send(events, slack.buttonPress(card, 0, { user: 'UTOM' }));
    await waitFor('one approval on the card', () =>
      card.text.startsWith('tom approved failover of prod-web'),
    );
    expect(buttons(card)).toEqual(expect.arrayContaining([`approve ${approval}`]));
    await slack.send(events, slack.buttonPress(card, 0, { user: 'UUMA' }));
    const done = await waitFor(
      'the result on the same message',
      () => (/RTO/.test(card.text) ? card : undefined),
      90_000,
    );
    expect(done.text).toMatch(
      /Failover of prod-web is healthy \(op-[a-z0-9]+\): point \d+, data age \d+ s, RTO \S+/,
    );
    expect(card.updates).toBeGreaterThanOrEqual(3); // approvals, start, steps, result: one message moving
    expect(fieldsOf(card)[7]).toBe(
      'Approvals\n2 of 2: tom, uma (from sre-oncall, not the requester)',
    );
    expect(fieldsOf(card)[8]).toBe('Expires\napproved');
    expect(slack.refusedBlocks).toEqual([]);
    expect(slack.channelMessages('CWEB').filter((m) => m.text.includes('prod-web'))).toHaveLength(
      1,
    );
    await waitFor('the RTO split in its thread', () =>
      slack
        .threadOf('CWEB', card.ts)
        .some((m) => /materialise \S+, launch \S+, healthy \S+/.test(m.text)),
    );
    const tomsEph = slack.ephemerals.find((e) => e.args.user === 'UTOM');
    expect(String(tomsEph?.args.text)).toMatch(/^Approved A-\d+: 1/);
  });

  it('DingTalk: failover → card → requester refused → two approvals → RTO on the card', {
    timeout: 150_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    gateway.robotMessage('dr failover prod-api', {
      staffId: 'staff-sam',
      conversationId: 'cid-api',
      sessionWebhook: openapi.sessionWebhook(),
    });
    const card = await waitFor('the approval card', () =>
      openapi.cardsIn('cid-api').find((c) => c.params.actions?.includes('approve ')),
    );
    const words = (JSON.parse(card.params.actions ?? '[]') as { words: string }[]).map(
      (a) => a.words,
    );
    const approve = words.find((w) => w.startsWith('approve ')) ?? '';
    expect(card.params).toMatchObject({
      isCard: '1',
      cardTitle: 'Failover of prod-api (prod)',
      askedBy: 'sam (no reason given)',
      approvals: '0 of 2 (from sre-oncall, not the requester)',
    });
    expect(card.params.point).toMatch(/^latest: #\d+ (app|crash)-consistent/);
    expect(card.params.facts).toContain('**Fencing**: not configured');
    const own = gateway.cardPress(card.outTrackId, approve, {
      userId: 'staff-sam',
      spaceId: 'cid-api',
    });
    const ownAck = await waitFor('the answer to the requester', () => gateway.ackOf(own));
    expect(JSON.stringify(ownAck.data)).toContain('You asked for this failover');
    const tom = gateway.cardPress(card.outTrackId, approve, {
      userId: 'staff-tom',
      spaceId: 'cid-api',
    });
    expect(JSON.stringify((await waitFor('tom', () => gateway.ackOf(tom))).data)).toMatch(
      /Approved A-\d+: 1/,
    );
    gateway.cardPress(card.outTrackId, approve, { userId: 'staff-uma', spaceId: 'cid-api' });
    await waitFor(
      'the RTO on the card',
      () => /RTO/.test(card.params.summary ?? '') || undefined,
      90_000,
    );
    expect(card.params.summary).toMatch(/Failover of prod-api is healthy/);
    expect(card.params.approvals).toBe('2 of 2: tom, uma (from sre-oncall, not the requester)');
    expect(card.params.details).toMatch(/materialise \S+, launch \S+, healthy \S+/);
    expect(openapi.cardsIn('cid-api')).toHaveLength(1);
    expect(gateway.badAcks).toEqual([]);
  });

  it('Slack and DingTalk: drill → result → Clean up', { timeout: 300_000 }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    await slack.send(events, slack.slashCommand('drill shop', { user: 'USAM', channel: 'CSHOP' }));
    const msg = await waitFor(
      'the drill result',
      () => slack.channelMessages('CSHOP').find((m) => /RTO/.test(m.text)),
      90_000,
    );
    expect(msg.text).toMatch(/Drill of shop is healthy/);
    const cleanup = buttons(msg).find((b) => b.startsWith('cleanup '));
    expect(cleanup).toBeDefined();
    await slack.send(
      events,
      slack.buttonPress(msg, buttons(msg).indexOf(cleanup ?? ''), { user: 'UTOM' }),
    );
    await waitFor(
      'the cleanup on the same message',
      () => /Cleanup of shop done/.test(msg.text) || undefined,
      60_000,
    );

    gateway.robotMessage('dr drill shop', {
      staffId: 'staff-tom',
      conversationId: 'cid-shop',
      sessionWebhook: openapi.sessionWebhook(),
    });
    const card = await waitFor(
      'the drill card result',
      () => openapi.cardsIn('cid-shop').find((c) => /RTO/.test(c.params.summary ?? '')),
      90_000,
    );
    const clean = (JSON.parse(card.params.actions ?? '[]') as { words: string }[]).find((a) =>
      a.words.startsWith('cleanup '),
    );
    expect(clean).toBeDefined();
    gateway.cardPress(card.outTrackId, clean?.words ?? '', {
      userId: 'staff-uma',
      spaceId: 'cid-shop',
    });
    await waitFor(
      'the cleanup on the card',
      () => /Cleanup of shop done/.test(card.params.summary ?? '') || undefined,
      60_000,
    );
    // Both drills left nothing behind (the failovers' servers keep running, as failovers do).
    for (const text of [msg.text, card.params.summary ?? '']) {
      const opId = /\((op-[a-z0-9]+)\)/.exec(text)?.[1] ?? 'none';
      await waitFor(`${opId} removed`, () =>
        stat(join(t.home, 'recovery', opId)).then(
          () => undefined,
          () => true,
        ),
      );
    }
  });

  it('RPO breach (agent stopped) → one alert on each surface → Acknowledge → recovered', {
    timeout: 150_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    await agent.stop();
    const alert = await waitFor(
      'the alert',
      () => slack.channelMessages('CALERTS').find((m) => m.text.includes('RPO breach: shop')),
      60_000,
    );
    const card = await waitFor('the DingTalk alert card', () =>
      openapi.cardsIn('cid-alerts').find((c) => c.params.summary?.includes('RPO breach: shop')),
    );
    expect(buttons(alert)).toEqual([expect.stringMatching(/^ack AL-\d+$/)]);
    await slack.send(events, slack.buttonPress(alert, 0, { user: 'UTOM' }));
    await waitFor(
      'the acknowledgement on the alert',
      () => /acknowledged/i.test(alert.text) || undefined,
      20_000,
    );
    await waitFor(
      'the acknowledgement on the card',
      () => /acknowledged/i.test(card.params.summary ?? '') || undefined,
      20_000,
    );
    agent = startDr(['agent', '--app', 'shop'], env);
    await waitFor('recovered', () => /RPO recovered: shop/.test(alert.text) || undefined, 60_000);
    await waitFor(
      'recovered on the card',
      () => /RPO recovered: shop/.test(card.params.summary ?? '') || undefined,
      20_000,
    );
    expect(slack.channelMessages('CALERTS').filter((m) => m.text.includes('shop'))).toHaveLength(1);
    expect(openapi.cardsIn('cid-alerts')).toHaveLength(1);
  });
});
