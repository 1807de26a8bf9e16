import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DingTalkGateway } from '../../fakes/dingtalk-gateway.js';
import { type Card, DingTalkOpenApi } from '../../fakes/dingtalk-openapi.js';
import { type PlanRig, startPlanRig } from '../../helpers/plan-rig.js';
import { type DrProcess, startDr } from '../../helpers/processes.js';
import { volumeServerPids } from '../../helpers/recovery-rig.js';
import { redisUnavailable } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

/**
 * The plan verbs on the other surfaces: DingTalk (a real `dr serve` with the robot in stream mode
 * against the gateway and OpenAPI emulators; the plan's one card carries the buttons) and the
 * console (`dr chat`, the buttons printed as the words to type). The Slack side is
 * plan-run-chat.test.ts; both run on the same rig of apps and plans.
 */
const problem = redisUnavailable();

describe('plan runs from DingTalk and the console', () => {
  let rig: PlanRig;
  let gateway: DingTalkGateway;
  let openapi: DingTalkOpenApi;
  let term: DrProcess;

  beforeAll(async () => {
    if (problem) return; // each test says why it skips
    gateway = new DingTalkGateway();
    await gateway.start();
    openapi = new DingTalkOpenApi(gateway.clientId, gateway.clientSecret);
    await openapi.start();
    rig = await startPlanRig({
      prefixLetter: 'd',
      surface: {
        DINGTALK_CLIENT_ID: gateway.clientId,
        DINGTALK_CLIENT_SECRET: gateway.clientSecret,
        DINGTALK_API_URL: openapi.url,
        DINGTALK_GATEWAY_URL: gateway.openUrl,
        DINGTALK_CARD_TEMPLATE_ID: 'lifeboat-card.schema',
      },
      people: {
        sam: { ids: ['dingtalk:staff-sam', 'console:sam'], groups: ['sre-oncall'] },
        tom: { ids: ['dingtalk:staff-tom', 'console:tom'], groups: ['sre-oncall'] },
      },
      allowConsoleAs: true,
      serveReady: /DingTalk: on/,
    });
    await waitFor('the DingTalk stream', () => gateway.connections === 1);
    term = startDr(['chat', '--as', 'sam'], { ...rig.env, DR_LOG_LEVEL: '' }, { input: true });
    await term.waitFor(/Lifeboat console as sam/, 60_000);
  }, 240_000);

  afterAll(async () => {
    term?.type('exit');
    await rig?.stop();
    await gateway?.stop();
    await openapi?.stop();
  });

  const explainFailure = () =>
    rig.explainFailure(() => {
      const cards = [...openapi.cards.values()].map(
        (c) =>
          `${c.openSpaceId} [${c.updates}] ${c.params.summary}\n${c.params.details}\n${c.params.actions}`,
      );
      return `--- cards\n${cards.join('\n')}\n--- dingtalk messages\n${openapi.messages.map((m) => `${m.kind} ${m.to} ${m.text}`).join('\n')}\n--- console\n${term.output().slice(-6000)}`;
    });

  /** What the console prints from now on. */
  const fromNow = () => {
    const mark = term.output().length;
    return () => term.output().slice(mark);
  };
  const words = (c: Card) =>
    (JSON.parse(c.params.actions ?? '[]') as { words: string }[]).map((a) => a.words);
  const planCard = (plan: string, has: string) =>
    openapi
      .cardsIn('cid-ops')
      .find(
        (c) =>
          (c.params.summary ?? '').includes(`plan ${plan} (op-`) &&
          words(c).some((w) => w.startsWith(has)),
      );
  const ask = (text: string, staffId = 'staff-sam') =>
    gateway.robotMessage(`dr ${text}`, {
      staffId,
      conversationId: 'cid-ops',
      sessionWebhook: openapi.sessionWebhook(),
    });
  const press = (c: Card, w: string, staffId: string) => {
    expect(words(c), `button ${w}`).toContain(w);
    return gateway.cardPress(c.outTrackId, w, { userId: staffId, spaceId: 'cid-ops' });
  };
  const ackText = async (messageId: string) =>
    JSON.stringify(
      (await waitFor(`the answer to ${messageId}`, () => gateway.ackOf(messageId))).data,
    );
  /** What the robot said in the conversation after `from` messages (session webhook replies). */
  const robotSaid = (from: number, re: RegExp) =>
    waitFor(`the robot to say ${re}`, () =>
      openapi.messages.slice(from).find((m) => re.test(m.text)),
    );

  it('console: a failover stopped by a failure, retried (failing again), then rolled back to nothing', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    const since = fromNow();
    term.type('failover broken');
    await waitFor(
      'the plan stopped, its buttons printed as words',
      () =>
        /stopped at group 2 \(bad\) after a failure[\s\S]*\[Retry bad\] retry op-/.test(since()) ||
        undefined,
      180_000,
    );
    const opId = /\[Retry bad\] retry (op-[a-z0-9]+)/.exec(since())?.[1] ?? '';
    expect(since()).toMatch(/1\. db healthy \(op-/);
    expect(since()).toContain(`[Skip bad] skip ${opId}`);
    expect(since()).toContain(`[Roll back] rollback ${opId}`);
    expect(await volumeServerPids(rig.t.dir)).toHaveLength(1); // db's, at the DR site

    // Bad input: there is no manual step to continue.
    term.type(`continue ${opId}`);
    await waitFor(
      'the refusal of continue',
      () => /waits at no manual step/.test(since()) || undefined,
    );

    const afterRetry = fromNow();
    term.type(`retry ${opId}`);
    await waitFor(
      'the retry taken and failing again',
      () => {
        const out = afterRetry();
        return /sam retried failover of plan broken/.test(out) &&
          /stopped at group 2 \(bad\) after a failure/.test(out)
          ? true
          : undefined;
      },
      180_000,
    );
    const afterRollback = fromNow();
    term.type(`rollback ${opId}`);
    await waitFor(
      'the plan rolled back',
      () => /: rolled back/.test(afterRollback()) || undefined,
      180_000,
    );
    await rig.expectRolledBack(opId);
    expect(await rig.lines('unfences.log')).toContain('bad');
  });

  it('console: a drill waits at its manual step until `continue` is typed, by someone else too', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    const since = fromNow();
    term.type('as sam');
    term.type('drill shop');
    await waitFor(
      'the drill at its manual step',
      () => /\] continue op-/.test(since()) || undefined,
      180_000,
    );
    const opId = /\] continue (op-[a-z0-9]+)/.exec(since())?.[1] ?? '';
    expect(since()).toContain('then manual "DNS switched — continue": WAITING for a person');
    term.type('as tom');
    term.type(`continue ${opId}`);
    await waitFor(
      'the drill done',
      () => new RegExp(`Drill of plan shop \\(${opId}\\): done in `).test(since()) || undefined,
      180_000,
    );
    expect(since()).toContain(`tom continued drill of plan shop (${opId})`);
    expect(since()).toMatch(/3\. web healthy \(op-/);
    term.type(`continue ${opId}`);
    await waitFor(
      'the late continue refused',
      () => /is finished: nothing to continue/.test(since()) || undefined,
    );

    // status PLAN: the apps in order and this drill as the last run; a wrong name, the nearest.
    term.type('status shop');
    await waitFor(
      'the status of the plan',
      () =>
        new RegExp(`last run: Drill of plan shop \\(${opId}\\): done in `).test(since()) ||
        undefined,
    );
    expect(since()).toMatch(
      /Status of plan shop[^\n]*\n[\s\S]*1\. db: [\s\S]*2\. api: [\s\S]*3\. web: /,
    );
    term.type('status shpo');
    await waitFor(
      'the unknown name refused',
      () => /Unknown app or plan "shpo"\. Did you mean shop\?/.test(since()) || undefined,
    );
  });

  it('DingTalk: a drill stopped by a failure goes on when Skip is pressed, and says who skipped', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    ask('drill broken', 'staff-tom');
    const card = await waitFor(
      'the drill card stopped at group 2',
      () => planCard('broken', 'skip '),
      180_000,
    );
    const opId = /\((op-[a-z0-9]+)\)/.exec(card.params.summary ?? '')?.[1] ?? '';
    expect(card.params.summary).toContain('stopped at group 2 (bad) after a failure');
    expect(words(card)).toEqual([`retry ${opId}`, `skip ${opId}`, `rollback ${opId}`]);
    expect(await ackText(press(card, `skip ${opId}`, 'staff-sam'))).toContain(
      `sam skipped drill of plan broken (${opId})`,
    );
    await waitFor(
      'the drill done on the card',
      () => /: done in /.test(card.params.summary ?? '') || undefined,
      180_000,
    );
    expect(card.params.details).toContain('2. bad skipped by sam (op-');
    expect(card.params.details).toMatch(/3\. web healthy \(op-/);
    const done = await rig.planStatus(opId);
    expect(done.run.phase).toBe('done');

    // status PLAN: the apps in order, and this drill (done without bad) as the plan's last run.
    const from = openapi.messages.length;
    ask('status broken', 'staff-tom');
    const status = await robotSaid(
      from,
      new RegExp(`last run: Drill of plan broken \\(${opId}\\): done in `),
    );
    expect(status.text).toMatch(/1\. db: [\s\S]*2\. bad: [\s\S]*3\. web: /);
    expect(gateway.badAcks).toEqual([]);
  });

  it('DingTalk: a plan of three apps fails over in order; Continue counts once, a second press names the first', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    const fencedBefore = (await rig.lines('fences.log')).length;
    ask('failover shop');
    const card = await waitFor(
      'the plan card waiting at the manual step',
      () => planCard('shop', 'continue '),
      180_000,
    );
    const opId = /\((op-[a-z0-9]+)\)/.exec(card.params.summary ?? '')?.[1] ?? '';
    expect((await rig.lines('fences.log')).slice(fencedBefore)).toEqual(['web', 'api', 'db']);
    expect(card.params.details).toMatch(/1\. db healthy \(op-/);
    expect(card.params.details).toMatch(/2\. api healthy \(op-/);
    expect(card.params.details).toContain('WAITING for a person');
    expect(card.params.details).toContain('3. web waiting');
    expect((await rig.planStatus(opId)).run.groups[2]?.apps[0]?.state).toBe('pending');

    // Both saw the button: the second press is checked against the card as it was before the
    // first (the first may already have taken the buttons off the live card).
    expect(words(card), 'the Continue button').toContain(`continue ${opId}`);
    const tom = gateway.cardPress(card.outTrackId, `continue ${opId}`, {
      userId: 'staff-tom',
      spaceId: 'cid-ops',
    });
    const sam = gateway.cardPress(card.outTrackId, `continue ${opId}`, {
      userId: 'staff-sam',
      spaceId: 'cid-ops',
    });
    const answers = [await ackText(tom), await ackText(sam)];
    const taken = answers.filter((a) => /(tom|sam) continued failover of plan shop/.test(a));
    expect(taken, answers.join('\n')).toHaveLength(1);
    const winner = /(tom|sam) continued/.exec(taken[0] ?? '')?.[1] ?? '';
    expect(answers.find((a) => a !== taken[0])).toMatch(
      new RegExp(`${winner} already sent \`continue\`|was already continued by ${winner}`),
    );
    await waitFor(
      'the plan done on the card',
      () => /: done in /.test(card.params.summary ?? '') || undefined,
      180_000,
    );
    expect(card.params.details).toContain(`continued by ${winner}`);
    expect(card.params.details).toMatch(/3\. web healthy \(op-/);
    expect(words(card)).toEqual([]);
    expect(openapi.cardsIn('cid-ops').filter((c) => c.params.summary?.includes(opId))).toHaveLength(
      1,
    );

    // A control for a finished run, typed: refused with the reason.
    const from = openapi.messages.length;
    ask(`retry ${opId}`, 'staff-tom');
    await robotSaid(from, /is finished: nothing to retry/);
    expect(gateway.badAcks).toEqual([]);
  });
});
