import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../../core/redis.js';
import { controlKeys } from '../../../engine/contract.js';
import { SlackEmulator, type SlackMessage } from '../../fakes/slack-web-api.js';
import { dr, type TestHome } from '../../helpers/lifeboat-home.js';
import { type PlanRig, startPlanRig } from '../../helpers/plan-rig.js';
import { readPng } from '../../helpers/png-pixels.js';
import { startDr } from '../../helpers/processes.js';
import { volumeServerPids } from '../../helpers/recovery-rig.js';
import { redisUnavailable } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

/**
 * Recovery plans run from Slack end to end: a real `dr serve` (engine + Slack surface), `dr
 * gateway`, `dr worker` on the local provider and real Redis; Slack's side is the emulator. The
 * plan's one message shows every group and app and carries the Continue, Retry, Skip and Roll
 * back buttons.
 */
const problem = redisUnavailable();

describe('plan runs from chat', () => {
  let rig: PlanRig;
  let t: TestHome;
  let slack: SlackEmulator;
  let env: NodeJS.ProcessEnv;
  let events: string;

  beforeAll(async () => {
    if (problem) return; // each test says why it skips
    slack = new SlackEmulator();
    await slack.start();
    rig = await startPlanRig({
      prefixLetter: 'p',
      surface: {
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: slack.signingSecret,
        SLACK_API_URL: slack.apiUrl,
      },
      people: {
        sam: { ids: ['slack:USAM'], groups: ['sre-oncall'] },
        tom: { ids: ['slack:UTOM'], groups: ['sre-oncall'] },
      },
      serveReady: /Slack: on/,
      channels: { alerts: ['slack:CALERTS'], apps: { db: ['slack:CDB'] } },
    });
    ({ t, env } = rig);
    events = `http://${rig.listen}/slack/events`;
  }, 240_000);

  afterAll(async () => {
    await rig?.stop();
    await slack?.stop();
  });

  const explainFailure = () =>
    rig.explainFailure(() => {
      const messages = [...slack.messages.values()].map(
        (m) => `${m.channel} ${m.ts} [${m.updates}] ${m.text}\n${JSON.stringify(m.blocks)}`,
      );
      return `--- slack messages\n${messages.join('\n')}\n--- ephemerals\n${slack.ephemerals.map((e) => `${e.args.user}: ${e.args.text}`).join('\n')}\n--- responses\n${slack.responses.map((r) => JSON.stringify(r.body.text)).join('\n')}`;
    });

  const buttons = (m: SlackMessage) =>
    (
      (m.blocks.find((b) => b.type === 'actions') as { elements?: { value: string }[] } | undefined)
        ?.elements ?? []
    ).map((e) => e.value);
  /** The message's body: the plan's lines, as Slack shows them. */
  const body = (m: SlackMessage) =>
    m.blocks
      .map((b) => (b as { text?: { text?: string } }).text?.text ?? '')
      .join('\n')
      .replace(/&gt;/g, '>');
  const planMessage = (plan: string) =>
    slack.channelMessages('COPS').find((m) => m.text.includes(`plan ${plan} (op-`));
  const press = async (m: SlackMessage, words: string, user = 'UTOM') => {
    const i = buttons(m).indexOf(words);
    expect(i, `button ${words} on ${buttons(m).join(', ')}`).toBeGreaterThanOrEqual(0);
    expect((await slack.send(events, slack.buttonPress(m, i, { user }))).status).toBe(200);
  };
  const say = async (words: string, user = 'USAM') =>
    expect(
      (await slack.send(events, slack.slashCommand(words, { user, channel: 'COPS' }))).status,
    ).toBe(200);
  it('a failure in the second group stops the third; rollback leaves nothing behind', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    await say('failover broken');
    const msg = await waitFor(
      'the plan message stopped at group 2',
      () => {
        const m = planMessage('broken');
        return m && buttons(m).some((b) => b.startsWith('retry ')) ? m : undefined;
      },
      180_000,
    );
    const opId = /\((op-[a-z0-9]+)\)/.exec(msg.text)?.[1] ?? '';
    expect(msg.text).toContain('stopped at group 2 (bad) after a failure');
    expect(body(msg)).toMatch(/1\. db healthy \(op-/);
    expect(body(msg)).toMatch(/2\. bad FAILED \(op-[a-z0-9]+\): the health check of bad failed/);
    expect(body(msg)).toContain('3. web waiting');
    expect(buttons(msg)).toEqual([`retry ${opId}`, `skip ${opId}`, `rollback ${opId}`]);
    // Fenced first, last group first; the third group's app never started.
    expect(await rig.lines('fences.log')).toEqual(['web', 'bad', 'db']);
    const before = await rig.planStatus(opId);
    const web = before.run.groups[2]?.apps[0];
    expect(web?.state).toBe('pending');
    expect(await rig.hasJob(web?.opId ?? '')).toBe(false);
    expect(await volumeServerPids(t.dir)).toHaveLength(1); // db's, at the DR site

    // Bad inputs, each a clear refusal: continue with no manual step, retry of a plan not waiting.
    await say(`continue ${opId}`, 'UTOM');
    const refusal = await waitFor('the refusal of continue', () =>
      slack.responses.find((r) => String(r.body.text).includes('waits at no manual step')),
    );
    expect(String(refusal.body.text)).toContain(`failover of plan broken (${opId})`);

    await press(msg, `rollback ${opId}`);
    await waitFor(
      'the plan rolled back',
      () => /: rolled back/.test(msg.text) || undefined,
      120_000,
    );
    expect(body(msg)).toMatch(/rollback: db: removed .*replication resumed.*source unfenced/);
    expect(buttons(msg)).toEqual([]);
    // Nothing left: no server, no recovery directory, no mount, every source replicating again.
    await rig.expectRolledBack(opId);
    expect(await readFile('/proc/mounts', 'utf8')).not.toContain(t.dir);
    expect(await rig.lines('unfences.log')).toEqual(['db', 'bad', 'web']);
    const status = await dr(['--home', t.home, 'status', '--json'], env);
    const apps = JSON.parse(status.out) as { app: string; protection?: { state: string } }[];
    for (const a of apps) expect(a.protection?.state ?? 'protected').toBe('protected');

    // A finished plan cannot be rolled back again, nor retried.
    const again = await dr(['--home', t.home, 'plan', 'rollback', opId], env);
    expect(again.code).toBe(1);
    expect(again.err).toContain('was rolled back already: nothing to rollback');
  });

  it('a drill of a plan stopped by a failure rolls back to nothing: servers, mounts, cleanups', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    await say('drill broken');
    const msg = await waitFor(
      'the drill stopped at group 2',
      () => {
        const m = slack
          .channelMessages('COPS')
          .find((x) => x.text.startsWith('Drill of plan broken'));
        return m && buttons(m).some((b) => b.startsWith('rollback ')) ? m : undefined;
      },
      180_000,
    );
    const opId = /\((op-[a-z0-9]+)\)/.exec(msg.text)?.[1] ?? '';
    expect(body(msg)).toMatch(/1\. db healthy \(op-/);
    expect(body(msg)).toContain('3. web waiting');
    await press(msg, `rollback ${opId}`);
    await waitFor(
      'the drill rolled back',
      () => /: rolled back/.test(msg.text) || undefined,
      120_000,
    );
    await rig.expectRolledBack(opId, 'pending'); // a drill fences nothing: web was never touched
    expect(await readFile('/proc/mounts', 'utf8')).not.toContain(t.home);
    // The drill's delayed cleanup went with it: nothing is left to run later.
    const db = (await rig.planStatus(opId)).run.groups[0]?.apps[0]?.opId ?? '';
    expect(await rig.hasJob(`${db}-cleanup`)).toBe(false);
  });

  it('a worker killed while the plan waits: the next worker rolls back what the record says was started', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    // Followed from the command line meanwhile: it says what the run waits for, and how it ended.
    const follower = startDr(['failover', 'shop', '--wait'], env);
    await follower.waitFor(/op-[a-z0-9]+: failover of plan shop queued/, 60_000);
    const opId = /(op-[a-z0-9]+): failover of plan shop queued/.exec(follower.output())?.[1] ?? '';
    await waitFor(
      'the run at its manual step',
      async () => {
        const s = await rig.planStatus(opId);
        return s.run?.phase === 'waiting-manual' || undefined;
      },
      180_000,
    );
    expect(await volumeServerPids(t.dir)).toHaveLength(2); // db's and api's, at the DR site
    await rig.restartWorker();
    const rollback = await dr(['--home', t.home, 'plan', 'rollback', opId], env);
    expect(rollback.err).toBe('');
    expect(rollback.out).toContain(`rolled back failover of plan shop (${opId})`);
    await waitFor(
      'the run rolled back by the new worker',
      async () => {
        const s = await rig.planStatus(opId);
        return s.run?.phase === 'rolled-back' || undefined;
      },
      120_000,
    );
    await rig.expectRolledBack(opId);
    expect(await follower.exited).toBe(1);
    expect(follower.output()).toContain(`continue with \`dr plan continue ${opId}\``);
    expect(follower.output()).toContain(`Failover of plan shop (${opId}): rolled back in `);
    expect(follower.output()).toMatch(/rollback: db: removed .*source unfenced/);
  });

  // Before the failover below: a drill of a failed-over app would meet its production server on
  // the same port (the local provider), and a health check answered by it does not count.
  it('a plan drilled on its schedule runs once as the scheduler, posts its report, and `report PLAN` counts it', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    const planFile = join(t.home, 'plans', 'duo.yaml');
    const policy = join(t.home, 'policies', 'duo-schedule.yaml');
    await writeFile(planFile, 'groups:\n  - apps: [db]\n  - apps: [web]\n');
    const conn = connectRedis(rig.redis.url, 'test');
    try {
      await writeFile(
        policy,
        'policies:\n  - name: duo-drill\n    schedule: { cron: "* * * * * *", plans: [duo] }\n',
      );
      const opId = await waitFor(
        'the scheduled run queued',
        async () => (await conn.get(`${rig.prefix}lastplanrun:duo`)) ?? undefined,
        120_000,
      );
      // Firings while it runs start nothing; with the schedule gone, none follows.
      await unlink(policy);
      const done = await waitFor(
        'the scheduled drill done',
        async () => {
          const s = await rig.planStatus(opId);
          return s.run && ['done', 'rolled-back'].includes(s.run.phase) ? s : undefined;
        },
        180_000,
      );
      expect(done.run.phase).toBe('done');
      expect((done as unknown as { requestedBy: string }).requestedBy).toBe('scheduler');
      expect(await conn.get(`${rig.prefix}lastplanrun:duo`)).toBe(opId);
      // The report reads the audit log: the run's result is there once the event is audited.
      await waitFor(
        "the run's result audited",
        async () =>
          (await conn.xrange(controlKeys(rig.prefix).audit, '-', '+')).some(([, f]) => {
            const e = f[f.indexOf('entry') + 1] ?? '';
            return e.includes('"type":"result"') && e.includes(opId);
          }) || undefined,
        60_000,
      );
      // Its drill report, once, to its apps' channels and the alerts channel; none for its apps'
      // own drills inside the run.
      const posted = await waitFor(
        'the report of the scheduled plan drill',
        () => {
          const f = slack.files.shared.filter((x) => x.filename.startsWith('drill-report-duo-'));
          return f.length >= 2 ? f : undefined;
        },
        120_000,
      );
      expect(posted.map((f) => f.channel).sort()).toEqual(['CALERTS', 'CDB']);
      for (const f of posted)
        expect(f.comment).toMatch(
          /^Drill report of plan duo: duo, last 30 d; 1 plan drill\(s\), 1 passed/,
        );
      expect(readPng(posted[0]?.bytes ?? Buffer.alloc(0)).width).toBeGreaterThan(1200);
      expect(slack.files.shared.filter((f) => /^drill-report-(db|web)-/.test(f.filename))).toEqual(
        [],
      );
      await say('report duo');
      const file = await waitFor(
        'the report of duo',
        () =>
          slack.files.shared.find(
            (f) => f.channel === 'COPS' && f.filename.startsWith('drill-report-duo-'),
          ),
        120_000,
      );
      expect(file.comment).toMatch(/^duo, last 30 d; 1 plan drill\(s\), 1 passed/);
    } finally {
      conn.disconnect();
      await unlink(policy).catch(() => undefined); // gone already when the run was seen
      await unlink(planFile);
    }
  });

  it('a plan of three apps fails over in order with a hook and a manual step, from Slack', {
    timeout: 300_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    const fencedBefore = (await rig.lines('fences.log')).length;
    await say('failover shop');
    const msg = await waitFor(
      'the plan message waiting at the manual step',
      () => {
        const m = planMessage('shop');
        return m && buttons(m).some((b) => b.startsWith('continue ')) ? m : undefined;
      },
      180_000,
    );
    const opId = /\((op-[a-z0-9]+)\)/.exec(msg.text)?.[1] ?? '';
    expect((await rig.lines('fences.log')).slice(fencedBefore)).toEqual(['web', 'api', 'db']);
    expect((await rig.lines('hook.log')).at(-1)).toBe('shop failover');
    expect(body(msg)).toMatch(/1\. db healthy \(op-/);
    expect(body(msg)).toContain('then hook `echo');
    expect(body(msg)).toMatch(/2\. api healthy \(op-/);
    expect(body(msg)).toContain('then manual "DNS switched — continue": WAITING for a person');
    expect(body(msg)).toContain('3. web waiting');
    // The scheduled drill above kept db's server: db's failover ended it before it launched.
    expect(body(msg)).toMatch(/db: ended drill server of op-[a-z0-9]+ first/);
    // The app of group 3 has not started while the manual step waits.
    const waiting = await rig.planStatus(opId);
    expect(waiting.run.groups[2]?.apps[0]?.state).toBe('pending');

    await press(msg, `continue ${opId}`);
    // Pressed again by someone else: one press counts; the other is refused, naming the first.
    await press(msg, `continue ${opId}`, 'USAM');
    const replyTo = (user: string) =>
      waitFor(`the answer to ${user}'s press`, () =>
        slack.ephemerals.find((e) => e.args.user === user && /continue/.test(String(e.args.text))),
      );
    const answers = [await replyTo('UTOM'), await replyTo('USAM')].map((e) => String(e.args.text));
    const taken = answers.filter((a) => /^(tom|sam) continued failover of plan shop/.test(a));
    expect(taken).toHaveLength(1);
    const winner = taken[0]?.split(' ')[0] ?? '';
    expect(answers.find((a) => a !== taken[0])).toMatch(
      new RegExp(`${winner} already sent \`continue\`|was already continued by ${winner}`),
    );
    await waitFor('the plan done', () => /: done in /.test(msg.text) || undefined, 180_000);
    expect(body(msg)).toContain(`continued by ${winner}`);
    expect(body(msg)).toMatch(/3\. web healthy \(op-/);
    const done = await rig.planStatus(opId);
    expect(done.run.phase).toBe('done');
    // Each app's failover started only after the group before it was healthy.
    const ops = done.run.groups.map((g) => g.apps[0]?.opId ?? '');
    const started = await Promise.all(ops.map((op) => startedAt(op)));
    const finished = await Promise.all(ops.map((op) => finishedAt(op)));
    expect(started[1]).toBeGreaterThanOrEqual(finished[0] ?? Infinity);
    expect(started[2]).toBeGreaterThanOrEqual(finished[1] ?? Infinity);

    // status PLAN: its apps in order, each as `status APP` shows it, and this run as its last.
    await say('status shop');
    const status = await waitFor('the status of the plan', () =>
      slack.responses
        .map((r) => JSON.stringify(r.body))
        .find((b) => b.includes(`last run: Failover of plan shop (${opId}): done in `)),
    );
    expect(status).toMatch(/Status of plan shop \(the shop, database first\): 3 group/);
    expect(status).toMatch(/1\. db: [a-z-]+.*2\. api: [a-z-]+.*3\. web: [a-z-]+/);

    const late = await dr(['--home', t.home, 'plan', 'continue', opId], env);
    expect(late.code).toBe(1);
    expect(late.err).toContain('is finished: nothing to continue');
    const retry = await dr(['--home', t.home, 'plan', 'retry', opId], env);
    expect(retry.code).toBe(1);
    expect(retry.err).toContain('is finished: nothing to retry');
  });

  const startedAt = (op: string) => rig.eventTime(op, 'started');
  const finishedAt = (op: string) => rig.eventTime(op, 'finished');

  it('bad inputs: an unknown plan, a plan naming an unknown app, a control for no plan run', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const unknown = await dr(['--home', t.home, 'failover', 'shpo'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('shpo');
    expect(unknown.err).toContain('plans: broken, shop');

    const retry = await dr(['--home', t.home, 'plan', 'retry', 'op-nosuchrun1'], env);
    expect(retry.code).toBe(1);
    expect(retry.err).toContain('op-nosuchrun1 is not a plan run');

    await writeFile(join(t.home, 'plans', 'ghost.yaml'), 'groups:\n  - apps: [db, ghost]\n');
    try {
      const ghost = await dr(['--home', t.home, 'failover', 'ghost'], env);
      expect(ghost.code).toBe(1);
      expect(ghost.err).toMatch(/ghost\.yaml:2: .*ghost/);
      await say('drill ghost');
      const reply = await waitFor('the chat refusal', () =>
        slack.responses.find((r) => JSON.stringify(r.body).includes('ghost.yaml:2')),
      );
      expect(JSON.stringify(reply.body)).toContain('problem(s)');
    } finally {
      await writeFile(join(t.home, 'plans', 'ghost.yaml'), 'groups:\n  - apps: [db]\n');
    }
  });
});
