import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dr, freePort, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { recoveryEnv } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

/**
 * `dr status PLAN`: the plan's apps group by group, each as `dr status APP` reports it, and the
 * plan's last run, worded by the renderer chat's `status PLAN` uses; `--json` a stable object.
 * A real gateway and a real Redis; the run is queued by `dr drill PLAN` (no worker takes it).
 * Bad inputs: a name that is neither an app nor a plan, plan files that fail lint, a plan whose
 * app left dr.yaml, Redis away.
 */
const problem = redisUnavailable();
const DUO = 'description: db first\ngroups:\n  - apps: [db]\n  - apps: [web]\n';

interface PlanStatusJson {
  plan: string;
  description: string | null;
  groups: { apps: { app: string; phase: string; points: number }[] }[];
  lastRun: { opId: string; verb: string | null; phase: string; summary: string } | null;
  lastRunUnknown?: string;
}

describe('dr status PLAN', () => {
  let t: TestHome;
  let redis: TestRedis;
  let env: NodeJS.ProcessEnv;
  const status = (name: string, more: string[] = [], e = env) =>
    dr(['--home', t.home, 'status', name, ...more], e);
  const json = async (name: string, e = env) => {
    const r = await status(name, ['--json'], e);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.out) as PlanStatusJson;
  };

  beforeAll(async () => {
    if (problem) return; // each test says why it skips
    t = await testHome();
    redis = await startRedis();
    env = recoveryEnv(t.home, redis.url, 's').env;
    await t.startGateway();
    for (const [i, app] of ['db', 'web'].entries()) {
      const image = join(t.dir, `${app}.img`);
      await writeImage(image, 1024 * 1024, i + 1);
      const add = await dr(['--home', t.home, 'app', 'add', app, '--volume', `data=${image}`]);
      expect(add.err).toBe('');
      const once = await dr(['--home', t.home, 'agent', '--app', app, '--once'], env);
      expect(once.code).toBe(0);
    }
    await mkdir(join(t.home, 'plans'));
    await writeFile(join(t.home, 'plans', 'duo.yaml'), DUO);
  }, 120_000);

  afterAll(async () => {
    await redis?.stop();
    await t?.cleanup();
  });

  it('shows the apps group by group as `dr status APP` does, and the last run', {
    timeout: 120_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const before = await json('duo');
    expect(before).toMatchObject({ plan: 'duo', description: 'db first', lastRun: null });
    expect(before.groups.map((g) => g.apps.map((a) => a.app))).toEqual([['db'], ['web']]);
    // Each app's object is the one `dr status APP --json` gives.
    const db = JSON.parse((await status('db', ['--json'])).out) as Record<string, unknown>;
    const inPlan = before.groups[0]?.apps[0] as unknown as Record<string, unknown>;
    expect(Object.keys(inPlan).sort()).toEqual(Object.keys(db).sort());
    expect(inPlan).toMatchObject({
      app: 'db',
      phase: db.phase,
      points: 1,
      lastPoint: db.lastPoint,
    });

    const text = await status('duo');
    expect(text.code).toBe(0);
    const lines = text.out.trimEnd().split('\n');
    expect(lines[0]).toBe('Status of plan duo (db first): 2 group(s), 2 app(s)');
    expect(lines[1]).toMatch(/^ {2}1\. db: [a-z-]+( \(.*\))?, RPO .*, last point #1 \w+, backlog /);
    expect(lines[2]).toMatch(
      /^ {2}2\. web: [a-z-]+( \(.*\))?, RPO .*, last point #1 \w+, backlog /,
    );
    expect(lines[3]).toBe('  last run: none yet');

    const drill = await dr(['--home', t.home, 'drill', 'duo'], env);
    expect(drill.code).toBe(0);
    const opId = /(op-[a-z0-9]+)/.exec(drill.out)?.[1] ?? '';
    expect(opId).not.toBe('');
    const after = await json('duo');
    expect(after.lastRun).toEqual({
      opId,
      verb: 'drill',
      phase: 'queued',
      summary: `Drill of plan duo (${opId}): queued`,
    });
    expect((await status('duo')).out).toContain(`  last run: Drill of plan duo (${opId}): queued`);
  });

  it('without Redis it shows the apps and says why the last run is unknown', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const away = { ...env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` };
    const r = await status('duo', [], away);
    expect(r.code).toBe(0);
    expect(r.out).toContain('  1. db: ');
    expect(r.out).toMatch(
      /last run: unknown: cannot reach Redis at 127\.0\.0\.1:\d+: .*To resolve, start redis-server/,
    );
    const j = await json('duo', away);
    expect(j.lastRun).toBeNull();
    expect(j.lastRunUnknown).toMatch(/^cannot reach Redis at /);
  });

  it('a name that is neither an app nor a plan: the nearest name, else both lists', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const typo = await status('dou');
    expect(typo.code).toBe(2);
    expect(typo.out).toBe('');
    expect(typo.err).toMatch(/^dr: no app or plan named "dou"\. To resolve, did you mean duo\?/);
    const far = await status('zzzzzz', ['--json']);
    expect(far.code).toBe(2);
    expect(JSON.parse(far.out).error.code).toBe('app_unknown');
    expect(far.err).toContain('use one of: db, web (`dr app list`); plans: duo');
  });

  it('plan files that fail lint, and a plan whose app left dr.yaml: each file:line', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const bad = join(t.home, 'plans', 'bad.yaml');
    await writeFile(bad, 'groups:\n  - apps: [db]\n    wait: soon\n');
    const lint = await status('duo');
    expect(lint.code).toBe(2);
    expect(lint.err).toContain(`${bad}:3: wait: expected healthy`);
    expect(lint.err).toContain('To resolve, fix each file:line named (`dr plan lint`');
    await writeFile(bad, 'groups:\n  - apps: [db]\n');

    const removed = await dr(['--home', t.home, 'app', 'remove', 'web']);
    expect(removed.code).toBe(0);
    const gone = await status('duo');
    expect(gone.code).toBe(2);
    expect(gone.err).toMatch(/duo\.yaml:4: apps: unknown app "web"/);
    // The app itself still answers: the gateway keeps its replica.
    expect((await status('web')).code).toBe(0);
  });
});
