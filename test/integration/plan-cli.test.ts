import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EngineHome, engineHome, PEOPLE_YAML } from '../helpers/engine-home.js';
import { dr, scribble, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

/** PEOPLE_YAML's apps (web: prod, shop: dev) plus a database and a worker. */
const YAML = `${PEOPLE_YAML}  db:
    tier: staging
    fence: systemctl stop postgres
    volumes: [{ name: data, path: /tmp/none-db.img }]
  worker:
    tier: dev
    volumes: [{ name: data, path: /tmp/none-worker.img }]
`;

const STORE = `description: the store, database first
points: plan-consistent
groups:
  - apps: [db]
    then:
      - hook: ./repoint-dns.sh
  - apps: [shop, worker]
    wait: 20s
    then:
      - manual: DNS switched — continue
  - apps: [web]
`;

describe('dr plan lint | show | explain', () => {
  let h: EngineHome;
  let plans: string;
  beforeEach(async () => {
    h = await engineHome(YAML);
    plans = join(h.home, 'plans');
    await mkdir(plans);
    await writeFile(join(plans, 'store.yaml'), STORE);
  });
  afterEach(async () => h?.cleanup());

  it('lint passes a good plan and names every problem of a bad one with file:line', async () => {
    const ok = await dr(['--home', h.home, 'plan', 'lint']);
    expect(ok.out).toBe(`ok: 1 plan(s) in ${plans}\n`);
    expect(ok.code).toBe(0);

    const bad = join(plans, 'broken.yaml');
    await writeFile(bad, 'groups:\n  - apps: [db, wbe]\n    wait: soon\n');
    const r = await dr(['--home', h.home, 'plan', 'lint']);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toEqual([
      `${bad}:2: apps: unknown app "wbe" (did you mean web?); apps in dr.yaml: web, shop, db, worker`,
      `${bad}:3: wait: expected healthy (each app passes its check) or a delay like 30s`,
    ]);
    // The good file beside it is untouched: lint only reads.
    expect(await readFile(join(plans, 'store.yaml'), 'utf8')).toBe(STORE);
  });

  it('a home without plans/ has no plans, and show names the plans there are', async () => {
    const r = await dr(['--home', h.home, 'plan', 'show', 'shopp']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/no plan named "shopp".*(did you mean|plans here: store)/);
  });

  it('show prints the order, waits and steps; --json the plan', async () => {
    const r = await dr(['--home', h.home, 'plan', 'show', 'store']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('order: [db] → [shop, worker] → [web]');
    expect(r.out).toContain('group 2: shop, worker  wait: 20s');
    expect(r.out).toContain('  then manual: DNS switched — continue');
    const j = JSON.parse((await dr(['--home', h.home, 'plan', 'show', 'store', '--json'])).out);
    expect(j.points).toEqual({ kind: 'plan-consistent' });
    expect(j.groups.map((g: { apps: string[] }) => g.apps)).toEqual([
      ['db'],
      ['shop', 'worker'],
      ['web'],
    ]);
  });

  it('explain: the prod app decides for the plan; fences last group first; points unknown without a gateway', async () => {
    const r = await dr([
      '--home',
      h.home,
      'plan',
      'explain',
      'store',
      '--verb',
      'failover',
      '--json',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as {
      decision: { ok: boolean; would: string; app: string; tier: string };
      points: { ok: boolean; reason: string };
      steps: string[];
    };
    // The shipped policies: a prod failover needs two approvals; the dev and staging apps less.
    expect(j.decision).toMatchObject({ ok: true, would: 'approval', app: 'web', tier: 'prod' });
    expect(j.points.ok).toBe(false);
    expect(j.points.reason).toMatch(/the gateway did not list the points/);
    expect(j.steps).toEqual([
      "1. fence web's source: no fence command in dr.yaml, recorded as unfenced",
      "2. fence worker's source: no fence command in dr.yaml, recorded as unfenced",
      "3. fence shop's source: no fence command in dr.yaml, recorded as unfenced",
      "4. fence db's source (`systemctl stop postgres`)",
      '5. fail over db (each healthy)',
      '6. run hook `./repoint-dns.sh` (up to 5m)',
      '7. fail over shop, worker (then wait 20s)',
      '8. wait for a person to press "DNS switched — continue"',
      '9. fail over web (each healthy)',
    ]);
    const bad = await dr(['--home', h.home, 'plan', 'explain', 'store', '--verb', 'reboot']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--verb "reboot" is not a plan operation.*drill, failover or failback/);
  });

  it('a plan named like an app is refused', async () => {
    await writeFile(join(plans, 'web.yaml'), 'groups:\n  - apps: [db]\n');
    const r = await dr(['--home', h.home, 'plan', 'lint', '--json']);
    const j = JSON.parse(r.out) as { ok: boolean; problems: { reason: string }[] };
    expect(j.ok).toBe(false);
    expect(j.problems[0]?.reason).toMatch(/has the name of an app/);
    expect(r.code).toBe(1);
  });
});

describe('dr plan explain against a real gateway', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
  });
  afterEach(async () => t?.cleanup());

  it('plan-consistent points: nothing newer than the app furthest behind, with the skew', async () => {
    for (const [app, seed] of [
      ['db', 3],
      ['web', 4],
    ] as const) {
      const image = join(t.dir, `${app}.img`);
      await writeImage(image, 512 * 1024, seed);
      expect((await dr(['--home', t.home, 'app', 'add', app, '--volume', `a=${image}`])).code).toBe(
        0,
      );
    }
    await t.startGateway();
    const once = async (app: string) => {
      const r = await dr(
        ['--home', t.home, 'agent', '--app', app, '--once', '--tracker', 'scan'],
        quiet,
      );
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
    };
    // db point 1, then web point 1, then db point 2: web is furthest behind.
    await once('db');
    await once('web');
    await scribble(join(t.dir, 'db.img'), 8);
    await once('db');
    await mkdir(join(t.home, 'plans'));
    const plan = (points: string) =>
      `points: ${points}\ngroups:\n  - apps: [db]\n  - apps: [web]\n`;
    await writeFile(join(t.home, 'plans', 'pair.yaml'), plan('plan-consistent'));
    const explain = async () => {
      const r = await dr(['--home', t.home, 'plan', 'explain', 'pair', '--json'], quiet);
      expect(r.code).toBe(0);
      return JSON.parse(r.out) as {
        points: {
          ok: boolean;
          chosen: Record<string, { id: number; timeMs: number }>;
          instantMs: number;
          skewMs: number;
        };
      };
    };
    const consistent = (await explain()).points;
    expect(consistent.ok).toBe(true);
    expect(consistent.chosen.db?.id).toBe(1);
    expect(consistent.chosen.web?.id).toBe(1);
    expect(consistent.instantMs).toBe(consistent.chosen.web?.timeMs);
    expect(consistent.skewMs).toBe(
      (consistent.chosen.web?.timeMs ?? 0) - (consistent.chosen.db?.timeMs ?? 0),
    );
    await writeFile(join(t.home, 'plans', 'pair.yaml'), plan('latest'));
    expect((await explain()).points.chosen.db?.id).toBe(2);
  });
});
