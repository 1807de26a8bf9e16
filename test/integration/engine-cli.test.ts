import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { connectRedis } from '../../core/redis.js';
import type { Engine } from '../../engine/create-engine.js';
import {
  command,
  type EngineHome,
  engineHome,
  PEOPLE_YAML,
  startEngine,
  testPrefix,
} from '../helpers/engine-home.js';
import { dr, testHome } from '../helpers/lifeboat-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const shipped = fileURLToPath(new URL('../../policies', import.meta.url));

describe('dr policy lint | test | explain', () => {
  let h: EngineHome;
  beforeEach(async () => {
    h = await engineHome();
  });
  afterEach(async () => h?.cleanup());

  it('the shipped policies pass their own test cases (checked against a home with their groups)', async () => {
    const r = await dr(['--home', h.home, 'policy', 'test', shipped, '--json']);
    const body = JSON.parse(r.out) as { ok: boolean; results: { passed: boolean; name: string }[] };
    expect(body.results.filter((x) => !x.passed)).toEqual([]);
    expect(body.results.length).toBeGreaterThan(10);
    expect(r.code).toBe(0);
  });

  it('dr init copies the shipped policies, which lint clean against its dr.yaml', async () => {
    const home = join(h.dir, 'fresh');
    expect((await dr(['init', '--home', home])).code).toBe(0);
    const r = await dr(['--home', home, 'policy', 'lint']);
    expect(r.out).toMatch(/^ok: 11 policies in 5 file\(s\)/);
    const t = await dr(['--home', home, 'policy', 'test']);
    expect(t.code).toBe(0);
    const list = JSON.parse((await dr(['--home', home, 'policy', 'list', '--json'])).out) as {
      name: string;
      effect: { kind: string };
    }[];
    expect(list.find((p) => p.name === 'weekly-prod-drill')?.effect).toEqual({
      kind: 'schedule',
      cron: '0 3 * * 0',
      verb: 'drill',
    });
  });

  it('lint reports every bad file with file, line and reason, and exits 1', async () => {
    await writeFile(
      join(h.policies, 'broken.yaml'),
      'policies:\n  - name: x\n    when:\n      groups: dbas\n    allow: true\n',
    );
    const r = await dr(['--home', h.home, 'policy', 'lint']);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `${join(h.policies, 'broken.yaml')}:4: when.groups: unknown group "dbas"`,
    );
  });

  it('test exits 1 on a failing case and names it', async () => {
    await writeFile(
      join(h.policies, 'mine.test.yaml'),
      'cases:\n  - name: devs may fail over prod\n    facts: { verb: failover, tier: prod, groups: [devs] }\n    expect: allow\n',
    );
    const r = await dr(['--home', h.home, 'policy', 'test']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      /FAIL {2}devs may fail over prod {2}\(.*mine\.test\.yaml:2: expected allow, got approval/,
    );
  });

  it('explain shows each policy, each condition, and the decision', async () => {
    const r = await dr([
      '--home',
      h.home,
      'policy',
      'explain',
      'failover',
      'web',
      '--as',
      'sam',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.out) as {
      would: string;
      policy: string;
      policies: {
        policy: string;
        matched: boolean;
        conditions: { fact: string; passed: boolean }[];
      }[];
    };
    expect(e.would).toBe('approval');
    expect(e.policy).toBe('prod-failover-two-approvals');
    const p = e.policies.find((x) => x.policy === 'prod-failover-two-approvals');
    expect(p?.conditions).toEqual([
      expect.objectContaining({ fact: 'verb', passed: true }),
      expect.objectContaining({ fact: 'tier', passed: true }),
    ]);
    const text = await dr(['--home', h.home, 'policy', 'explain', 'drill', 'web', '--as', 'dan']);
    expect(text.out).toMatch(/^drill web as dan: DENY/);
    expect(text.out).toMatch(/FAIL {2}isOwner equal true \(is false\)/);
    const urgent = await dr([
      '--home',
      h.home,
      'policy',
      'explain',
      'failback',
      'web',
      '--emergency',
      '--as',
      'sam',
      '--json',
    ]);
    expect(JSON.parse(urgent.out)).toMatchObject({ command: { emergency: true }, would: 'allow' });
    const nobody = await dr(['--home', h.home, 'policy', 'explain', 'drill', 'web', '--as', 'zed']);
    expect(nobody.code).toBe(2);
    expect(nobody.err).toContain('no person named "zed"');
  });
});

const problem = redisUnavailable();

describe('dr drill|failover through the engine, and dr audit', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let env: NodeJS.ProcessEnv;
  let conn: Redis;
  let prefix: string;
  const engines: Engine[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
  });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });
  const run = (args: string[]) => dr(['--home', h.home, ...args], env);

  it('a prod failover from the command line asks for approvals; a deny exits 1 with the reason and policy', async () => {
    h = await engineHome(PEOPLE_YAML.replace('admin: root', 'admin: dan'));
    env = { REDIS_URL: redis.url, DR_REDIS_PREFIX: prefix, DR_LOG_LEVEL: 'silent' };
    const denied = await run(['drill', 'web']);
    expect(denied.code).toBe(1);
    expect(denied.err).toContain('no policy lets dan drill web (policy (default deny))');
    await h.cleanup();
    h = await engineHome();
    const asked = await run(['failover', 'web', '--reason', 'zone a lost power']);
    expect(asked.code).toBe(0);
    expect(asked.out).toMatch(/needs 2 approval\(s\) from sre-oncall/);
    expect(asked.out).toMatch(/`approve A-1`/);
    // The reason is on the approval card's facts.
    const card = JSON.parse((await conn.get(`${prefix}approval:A-1:card`)) ?? '{}');
    expect(card).toMatchObject({ approvalId: 'A-1', reason: 'zone a lost power', tier: 'prod' });
    const empty = await run(['failover', 'web', '--reason', ' ']);
    expect(empty.code).not.toBe(0);
    expect(empty.err).toContain('--reason is empty');
    const dry = await run(['failback', 'web', '--dry-run', '--json']);
    expect(JSON.parse(dry.out).decision).toMatchObject({
      outcome: 'dryrun',
      would: expect.any(String),
    });
  });

  it('points answers from the gateway, to anyone', async () => {
    const t = await testHome();
    try {
      await t.startGateway();
      const image = join(t.dir, 'web.img');
      await writeFile(image, Buffer.alloc(256 * 1024, 7));
      expect(
        (
          await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${image}`], {
            DR_LOG_LEVEL: 'silent',
          })
        ).code,
      ).toBe(0);
      expect(
        (
          await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
            DR_LOG_LEVEL: 'silent',
          })
        ).code,
      ).toBe(0);
      const { createEngine } = await import('../../engine/create-engine.js');
      const e = await createEngine({
        home: t.home,
        config: await t.config(),
        redisUrl: redis.url,
        prefix,
        watchPolicies: false,
      });
      engines.push(e);
      const r = await e.submit(command('slack:USTRANGER', 'points web'));
      expect(r.ok).toBe(true);
      expect(r.summary).toBe('1 recovery point(s) of web');
      // This home holds the key: each point's signed record and the chain are checked.
      expect(r.details?.[0]).toMatch(
        /^#1 {2}\S+ {2}(fuzzy|crash-consistent|app-consistent) {2}verified$/,
      );
    } finally {
      await t.cleanup();
    }
  });

  it('a home from before the engine: no admin is an error with the remedy, no policies deny every action', async () => {
    h = await engineHome(PEOPLE_YAML.replace('admin: root\n', ''));
    env = { REDIS_URL: redis.url, DR_REDIS_PREFIX: prefix, DR_LOG_LEVEL: 'silent' };
    const noAdmin = await run(['drill', 'web']);
    expect(noAdmin.code).toBe(2);
    expect(noAdmin.err).toMatch(
      /names no admin\. To resolve, add people: with yourself and `admin: NAME`/,
    );
    await rm(h.policies, { recursive: true });
    const e = await startEngine(h, redis.url, prefix);
    engines.push(e);
    const r = await e.submit(command('slack:USAM', 'drill web'));
    expect(r.ok).toBe(false);
    expect(r.summary).toMatch(/no valid policy set is loaded \(.*cannot read the policy directory/);
    expect((await e.submit(command('slack:USAM', 'status'))).ok).toBe(true);
  });

  it('dr audit verify finds an edited, a removed and a reordered entry', async () => {
    h = await engineHome();
    env = { REDIS_URL: redis.url, DR_REDIS_PREFIX: prefix, DR_LOG_LEVEL: 'silent' };
    const e = await startEngine(h, redis.url, prefix);
    engines.push(e);
    await e.submit(command('slack:UALICE', 'drill web'));
    const asked = await e.submit(command('slack:USAM', 'failover web'));
    const id = asked.decision?.outcome === 'approval' ? asked.decision.approval.id : '';
    await e.submit(command('slack:UTOM', `approve ${id}`));
    await e.submit(command('slack:UUMA', `approve ${id}`));
    expect((await run(['audit', 'verify'])).out).toMatch(/^ok: \d+ entries, chain intact/);

    const file = join(h.dir, 'audit.jsonl');
    expect((await run(['audit', 'export', '--out', file])).code).toBe(0);
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines.length).toBeGreaterThan(8);
    expect(lines.map((l) => JSON.parse(l).type)).toEqual(
      expect.arrayContaining(['command', 'decision', 'approval', 'job']),
    );
    expect((await run(['audit', 'verify', file])).code).toBe(0);

    const check = async (changed: string[]) => {
      const f = join(h.dir, `t-${Math.random()}.jsonl`);
      await writeFile(f, `${changed.join('\n')}\n`);
      return run(['audit', 'verify', f]);
    };
    const edited = [...lines];
    const third = JSON.parse(edited[2] ?? '{}') as { actor?: string };
    edited[2] = JSON.stringify({ ...third, actor: 'slack:UMALLORY' });
    expect(edited[2]).not.toBe(lines[2]);
    const r1 = await check(edited);
    expect(r1.code).toBe(1);
    expect(r1.err).toContain('entry 3 (seq 3): edited');
    const r2 = await check(lines.filter((_, i) => i !== 4));
    expect(r2.code).toBe(1);
    expect(r2.err).toContain('missing (removed)');
    const swapped = [...lines];
    [swapped[5], swapped[6]] = [lines[6] ?? '', lines[5] ?? ''];
    const r3 = await check(swapped);
    expect(r3.code).toBe(1);
    expect(r3.err).toMatch(/out of order|does not link/);

    // and in Redis itself: the newest entry removed
    const [last] = await conn.xrevrange(`${prefix}audit`, '+', '-', 'COUNT', 1);
    await conn.xdel(`${prefix}audit`, last?.[0] ?? '');
    const r4 = await run(['audit', 'verify']);
    expect(r4.code).toBe(1);
    expect(r4.err).toContain('recorded head');
  });
});
