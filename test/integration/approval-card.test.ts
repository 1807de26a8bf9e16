/** A prod failover's approval card through the real engine and Redis, as Slack, DingTalk and the console show it; the stale-card path. */
import type { KnownBlock } from '@slack/types';
import type { Redis } from 'ioredis';
import {
  afterEach,
  beforeEach,
  describe,
  expect,
  expectTypeOf,
  it,
  type TestContext,
} from 'vitest';
import { cardOf } from '../../bot/card-lines.js';
import { cardParams, dingTalkMarkdown } from '../../bot/dingtalk/dingtalk-markdown.js';
import { plainText } from '../../bot/plain-text.js';
import { slackMessage } from '../../bot/slack/slack-blocks.js';
import { connectRedis } from '../../core/redis.js';
import { AlertStore } from '../../engine/alert-store.js';
import { ApprovalStore } from '../../engine/approval-store.js';
import type { AuditEntry } from '../../engine/audit-log.js';
import { controlKeys, type Notice } from '../../engine/contract.js';
import type { Engine } from '../../engine/create-engine.js';
import { recordLastRun } from '../../engine/last-runs.js';
import { readNotices } from '../../engine/notice-stream.js';
import { replicationKey } from '../../replicator/gateway/state-publisher.js';
import { emitEvent } from '../../replicator/jobs/operation-events.js';
import { recoveryKeys } from '../../replicator/jobs/recovery-contract.js';
import { blockKitProblems } from '../fakes/block-kit-check.js';
import { continuousStatusJson } from '../helpers/app-status-row.js';
import { command, type EngineHome, engineHome, testPrefix } from '../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { until } from '../helpers/wait-for.js';

const problem = redisUnavailable();
const T0 = Date.parse('2026-11-25T10:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

/** Every Slack field as `Label: value` text, for asserting on. */
const fieldsOf = (blocks: KnownBlock[]) =>
  blocks.flatMap((b) =>
    b.type === 'section' && b.fields ? b.fields.map((f) => f.text.replace(/\*/g, '')) : [],
  );

describe('approval cards', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let prefix: string;
  let conn: Redis;
  let clock = T0;
  const engines: Engine[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    h = await engineHome();
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
    clock = T0;
  });

  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });

  const engine = async (start = false, cardsEveryMs = 3_600_000) => {
    const { createEngine } = await import('../../engine/create-engine.js');
    const e = await createEngine({
      home: h.home,
      config: await h.config(),
      redisUrl: redis.url,
      prefix,
      watchPolicies: false,
      // The monitor would raise its own alerts from the states this test writes: kept out.
      monitorEveryMs: 3_600_000,
      cardsEveryMs,
      now: () => clock,
    });
    engines.push(e);
    if (start) await e.start();
    return e;
  };
  const notices = async (pred: (n: Notice) => boolean) =>
    (await readNotices(conn, prefix)).map((x) => x.notice).filter(pred);
  const audit = async () =>
    (await conn.xrange(controlKeys(prefix).audit, '-', '+')).map(
      ([, f]) => JSON.parse(f[f.indexOf('entry') + 1] ?? '{}') as AuditEntry,
    );

  /** sam asks for a prod failover with a reason, with a drill on record and an open RPO alert. */
  async function askFailover(e: Engine) {
    await conn.hset(replicationKey(prefix), 'web', continuousStatusJson(clock));
    await recordLastRun({ redis: conn, prefix }, 'web', 'drill', {
      opId: 'op-drill7',
      at: clock - 3 * 86_400_000,
      ok: true,
      rtoMs: 74_000,
    });
    const alert = await new AlertStore(conn, prefix).raise('rpo', 'web', 'rpo-objective', clock);
    const reply = await e.submit(
      command('slack:USAM', 'failover web', {
        channel: 'slack:CWEB',
        args: { reason: 'zone a lost power' },
      }),
    );
    expect(reply.decision?.outcome).toBe('approval');
    const requested = (await notices((n) => n.kind === 'approval.requested'))[0];
    if (!requested) throw new Error('no approval.requested notice');
    return { reply, requested, alertId: alert?.id ?? '' };
  }

  it('a prod failover card carries every fact, on Slack (typed Block Kit, fields, confirm), DingTalk and the console', async () => {
    const e = await engine();
    const { reply, requested, alertId } = await askFailover(e);
    const card = cardOf(requested.data);
    expect(card).toBeDefined();
    expect(cardOf(reply.data)).toEqual(card);
    const id = card?.approvalId ?? '';

    // Slack
    const msg = slackMessage(requested, { inlineDetails: false, now: clock });
    expectTypeOf(msg.blocks).toEqualTypeOf<KnownBlock[]>();
    expect(blockKitProblems(msg.blocks)).toEqual([]);
    expect(msg.blocks.map((b) => b.type)).toEqual([
      'section',
      'section',
      'context',
      'actions',
      'context',
    ]);
    expect(JSON.stringify(msg.blocks)).not.toContain('```'); // facts as fields, not a code block
    const head = msg.blocks[0] as { text: { text: string } };
    expect(head.text.text).toContain('*Failover of web (prod)*');
    expect(head.text.text).toContain('sam asks to failover web');
    expect(fieldsOf(msg.blocks)).toEqual([
      'Asked by\nsam: "zone a lost power"',
      `Source now\nreplication continuous; agent on web-1 heard 2.0s ago; open alerts: ${alertId} RPO breach for under 1s`,
      'Point\nlatest: #12 crash-consistent, 09:59:30 UTC (30s old)',
      'Data loss\nabout 28s of writes (the agent was heard that long after the point)',
      'Last drill\n3d ago: healthy, RTO 74s (op-drill7)',
      'Expected RTO\n74s (last drill, 3d ago)',
      'Fencing\nnot configured: the source is not fenced; stop it before approving',
      'Approvals\n0 of 2 (from sre-oncall, not the requester)',
      'Expires\n10:30:00 UTC (in 30m)',
    ]);
    const small = msg.blocks[2] as { elements: { text: string }[] };
    expect(small.elements.map((x) => x.text)).toEqual([`${id} · ${card?.opId}`]);
    const buttons = (msg.blocks[3] as unknown as { elements: Record<string, unknown>[] }).elements;
    expect(buttons[0]).toMatchObject({
      value: `approve ${id}`,
      style: 'primary',
      confirm: {
        title: { type: 'plain_text', text: 'Approve failover of web?' },
        text: {
          type: 'plain_text',
          text: 'web (prod) will run from the DR site on point #12 (crash-consistent, 30 s old). Writes after it, about 28 s, are lost. The source is NOT fenced: make sure it is stopped. Your approval is 1 of the 2 still needed.',
        },
        confirm: { type: 'plain_text', text: 'Approve failover' },
        deny: { type: 'plain_text', text: 'Go back' },
      },
    });
    expect(buttons[1]).toMatchObject({ value: `reject ${id}`, style: 'danger' });
    expect(buttons[1]?.confirm).toBeUndefined();

    // DingTalk: card variables and the markdown fallback
    const vars = cardParams(requested, clock);
    expect(vars).toMatchObject({
      isCard: '1',
      cardTitle: 'Failover of web (prod)',
      askedBy: 'sam: "zone a lost power"',
      point: 'latest: #12 crash-consistent, 09:59:30 UTC (30s old)',
      dataLoss: 'about 28s of writes (the agent was heard that long after the point)',
      lastDrill: '3d ago: healthy, RTO 74s (op-drill7)',
      expectedRto: '74s (last drill, 3d ago)',
      fencing: 'not configured: the source is not fenced; stop it before approving',
      approvals: '0 of 2 (from sre-oncall, not the requester)',
      expires: '10:30:00 UTC (in 30m)',
      factsAsOf: '',
    });
    expect(vars.sourceNow).toContain(`open alerts: ${alertId} RPO breach`);
    expect(vars.facts).toContain('**Data loss**: about 28s of writes');
    const actions = JSON.parse(vars.actions) as { words: string; confirm?: { text: string } }[];
    expect(actions[0]?.words).toBe(`approve ${id}`);
    expect(actions[0]?.confirm?.text).toContain('Writes after it, about 28 s, are lost.');
    for (const v of Object.values(vars)) expect(typeof v).toBe('string');
    const md = dingTalkMarkdown(requested, clock).text;
    for (const line of [
      '#### Failover of web (prod)',
      '**Asked by**: sam: "zone a lost power"',
      '**Point**: latest: #12 crash-consistent',
      '**Last drill**: 3d ago: healthy, RTO 74s',
      '**Approvals**: 0 of 2',
      `Approve: \`dr approve ${id}\``,
    ])
      expect(md).toContain(line);

    // Console
    const text = plainText(requested, '', clock);
    expect(text).toContain('\n  Failover of web (prod)\n  Asked by: sam: "zone a lost power"\n');
    expect(text).toContain('\n  Fencing: not configured: the source is not fenced');
    expect(text).toContain(`[Approve] approve ${id}   [Reject] reject ${id}`);

    // The reason is in the audit log, with the decision and the approval.
    const entries = await audit();
    expect(entries.find((x) => x.type === 'decision')?.data).toMatchObject({
      reason: 'zone a lost power',
    });
    expect(entries.find((x) => x.type === 'approval')?.data).toMatchObject({
      id,
      reason: 'zone a lost power',
    });
  });

  it('a press on a card whose source changed since it was shown refreshes it and asks again', async () => {
    const e = await engine();
    const { requested } = await askFailover(e);
    const id = cardOf(requested.data)?.approvalId ?? '';

    // Time passes, newer points arrive: nothing an approver decides on changed.
    clock = T0 + 20_000;
    await conn.hset(replicationKey(prefix), 'web', continuousStatusJson(clock));
    const first = await e.submit(command('slack:UTOM', `approve ${id}`));
    expect(first.ok).toBe(true);
    expect(first.summary).toMatch(/^Approved A-\d+: 1 of 2/);

    // The agent goes quiet and replication stalls; uma's card still shows it running.
    clock = T0 + 5 * 60_000;
    await conn.hset(
      replicationKey(prefix),
      'web',
      continuousStatusJson(clock, {
        phase: 'stalled',
        agent: { host: 'web-1', pid: 7, lastSeen: iso(T0 + 20_000), clockOffsetMs: 0 },
      }),
    );
    const stale = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(stale.ok).toBe(false);
    expect(stale.private).toBe(true);
    expect(stale.summary).toBe(
      `Not counted: the facts changed since the card was shown (replication: continuous → stalled; agent: heard → silent). The card now shows them; approve again if you still approve (\`approve ${id}\`).`,
    );
    const approvals = new ApprovalStore(conn, prefix);
    expect((await approvals.get(id))?.approvals.map((x) => x.person)).toEqual(['tom']);
    const refreshed = (await notices((n) => n.kind === 'approval.updated')).at(-1);
    expect(refreshed?.summary).toContain('changed since the card was shown');
    const now = cardOf(refreshed?.data);
    expect(now?.takenAt).toBe(clock);
    expect(now?.source.phase).toBe('stalled');
    expect(now?.approvals.names).toEqual(['tom']);
    const msg = slackMessage(refreshed as Notice, { inlineDetails: false, now: clock });
    expect(fieldsOf(msg.blocks)[1]).toBe(
      'Source now\nreplication stalled; agent on web-1 heard 5m ago; open alerts: AL-1 RPO breach for 5m',
    );
    expect(
      (await audit()).some(
        (x) => x.type === 'approval' && (x.data as { outcome?: string }).outcome === 'stale',
      ),
    ).toBe(true);

    // Pressed again, on the card that now shows it: counted, and the failover is queued.
    const again = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(again.ok).toBe(true);
    expect(again.summary).toMatch(/2 of 2; failover of web queued as op-/);
    expect(again.actions?.[0]).toMatchObject({
      kind: 'cancel',
      confirm: { title: 'Cancel the failover of web?' },
    });
    const granted = (await notices((n) => n.kind === 'approval.granted'))[0];
    expect(cardOf(granted?.data)?.approvals.names).toEqual(['tom', 'uma']);
  });

  it('a pending card is shown again, once, when its facts change, however many engines look', async () => {
    const e = await engine(true, 100);
    await engine(true, 100);
    const { requested } = await askFailover(e);
    const id = cardOf(requested.data)?.approvalId ?? '';
    clock = T0 + 90_000;
    await conn.hset(
      replicationKey(prefix),
      'web',
      continuousStatusJson(clock, { lastConsistentPoint: null, lastPoint: null }),
    );
    const shown = await until('the card shown again', async () =>
      (await notices((n) => n.kind === 'approval.updated')).at(0),
    );
    expect(shown.summary).toBe(
      `The facts of failover of web changed (point: latest:some → latest:none): 0 of 2 approvals (${id})`,
    );
    const facts = cardOf(shown.data);
    expect(facts?.takenAt).toBe(clock);
    expect(facts?.point).toEqual({ chosen: 'latest', known: false });
    expect(fieldsOf(slackMessage(shown, { now: clock }).blocks)[2]).toBe(
      'Point\nlatest, but there is no consistent point yet: it would fail',
    );
    // A press now is on the card that shows these facts: it counts.
    const pressed = await e.submit(command('slack:UTOM', `approve ${id}`));
    expect(pressed.summary).toMatch(/^Approved A-\d+: 1 of 2/);
    const refreshed = await notices((n) => n.summary.startsWith('The facts of'));
    expect(refreshed).toHaveLength(1);
  });

  it('a requester, a stranger or a repeat press on a stale card is refused as before, and refreshes nothing', async () => {
    const e = await engine();
    const { requested } = await askFailover(e);
    const id = cardOf(requested.data)?.approvalId ?? '';
    expect((await e.submit(command('slack:UTOM', `approve ${id}`))).ok).toBe(true);
    clock = T0 + 5 * 60_000;
    await conn.hset(
      replicationKey(prefix),
      'web',
      continuousStatusJson(clock, { phase: 'paused' }),
    );
    const self = await e.submit(command('slack:USAM', `approve ${id}`));
    expect(self.summary).toMatch(/You asked for this failover/);
    const stranger = await e.submit(command('slack:UDAN', `approve ${id}`));
    expect(stranger.summary).toMatch(/Only members of sre-oncall/);
    const repeat = await e.submit(command('slack:UTOM', `approve ${id}`));
    expect(repeat.summary).toMatch(/You already approved/);
    const refreshed = await notices((n) => n.summary.includes('changed since the card was shown'));
    expect(refreshed).toEqual([]);
    // a reject needs no fresh facts
    const rejected = await e.submit(command('slack:UUMA', `reject ${id} not now`));
    expect(rejected.summary).toMatch(/^Rejected/);
  });

  it('the card stays on the operation message as it runs, with Cancel asking first; old facts say their age', async () => {
    const e = await engine(true);
    const { requested } = await askFailover(e);
    const card = cardOf(requested.data);
    const id = card?.approvalId ?? '';
    await e.submit(command('slack:UTOM', `approve ${id}`));
    await e.submit(command('slack:UUMA', `approve ${id}`));
    const opId = card?.opId ?? '';
    const events = recoveryKeys(prefix).events;
    // The engine reads events from when its consumer group was made: wait for the group.
    await until('the engine reading events', async () => {
      const groups = (await conn.xinfo('GROUPS', events).catch(() => [])) as unknown[];
      return groups.length > 0 ? true : undefined;
    });
    await emitEvent(conn, events, { opId, app: 'web', job: 'failover', type: 'started' });
    const started = await until('operation.started', async () =>
      (await notices((n) => n.kind === 'operation.started' && n.key === `op:${opId}`)).at(0),
    );
    expect(cardOf(started.data)).toMatchObject({
      approvalId: id,
      status: 'granted',
      approvals: { names: ['tom', 'uma'] },
    });
    expect(started.actions).toEqual([
      {
        kind: 'cancel',
        label: 'Cancel',
        words: `cancel ${opId}`,
        style: 'danger',
        confirm: {
          title: 'Cancel the failover of web?',
          text: `This stops the failover of web (${opId}) where it is now; it will not finish.`,
          yes: 'Cancel failover',
        },
      },
    ]);
    // Rendered three minutes after its facts were taken, the card says so.
    const later = slackMessage(started, { inlineDetails: false, now: T0 + 3 * 60_000 });
    expect(blockKitProblems(later.blocks)).toEqual([]);
    const small = later.blocks[2] as { elements: { text: string }[] };
    expect(small.elements[1]?.text).toBe(':hourglass: Facts as of 10:00:00 UTC (3m ago)');
    const cancel = (later.blocks[3] as unknown as { elements: Record<string, unknown>[] })
      .elements[0];
    expect(cancel).toMatchObject({
      value: `cancel ${opId}`,
      confirm: { style: 'danger', confirm: { text: 'Cancel failover' } },
    });
    expect(cardParams(started, T0 + 3 * 60_000).factsAsOf).toBe(
      'Facts as of 10:00:00 UTC (3m ago)',
    );
    expect(plainText(started, '', T0 + 3 * 60_000)).toContain(
      '  Facts as of 10:00:00 UTC (3m ago)',
    );

    // When it ends, the run is recorded for the next card.
    await emitEvent(conn, events, {
      opId,
      app: 'web',
      job: 'failover',
      type: 'finished',
      error: { code: 'health_failed', message: 'health check failed' },
    } as never);
    await until('the failed notice', async () =>
      (await notices((n) => n.kind === 'operation.failed' && n.key === `op:${opId}`)).at(0),
    );
    expect(JSON.parse((await conn.hget(`${prefix}lastrun:web`, 'failover')) ?? '{}')).toMatchObject(
      { opId, ok: false, error: 'health check failed' },
    );
  });
});
