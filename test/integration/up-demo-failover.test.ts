import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useDemoRig } from '../helpers/demo-rig.js';
import { dr } from '../helpers/lifeboat-home.js';
import { loopProblem } from '../helpers/loop-device.js';
import { skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

// The demo's failovers from chat: the README's round trip, and the plan shop. Starting, drilling
// and stopping the demo are in up-demo.test.ts (the same rig).
describe('dr up --demo', () => {
  const demo = useDemoRig();
  const chat = (as: string | undefined, line: string) => demo.chat(as, line);

  /**
   * The README's round trip, from chat: failover (alice and bob approve) fences demo-shop at the
   * source, demo-shop takes orders at the DR site, failback brings every one of them home, starts
   * demo-shop at the source again, and replication resumes by itself.
   */
  async function roundTrip(env: NodeJS.ProcessEnv) {
    const { home } = demo;
    const { up: p, state } = await demo.upAndDrill(env);
    const get = async (url: string, path: string) =>
      (await (await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) })).json()) as {
        integrity?: string;
        count?: number;
        max?: number;
        order?: { id: number; createdMs: number } | null;
      };
    const asked = chat(undefined, 'failover demo-shop');
    const id = /needs 2 approval\(s\) from sre-oncall.*approve with `approve (A-\d+)`/.exec(
      asked,
    )?.[1];
    expect(id, asked).toBeDefined();
    expect(chat('alice', `approve ${id}`)).toContain(`Approved ${id}: 1 of 2`);
    const opId = /cancel (op-[a-z0-9]+)/.exec(chat('bob', `approve ${id}`))?.[1];
    expect(opId).toBeDefined();
    // The source is fenced: demo-shop closes its database (and, on ext4, its volume is unmounted).
    await p.waitFor(/demo-shop \| demo-shop fenced: database closed, taking no orders/, 90_000);
    await p.waitFor(
      /agent demo-shop \| warn: replication of demo-shop stopped: it was failed over; standing by/,
      90_000,
    );
    expect(p.output()).not.toContain('is not restarted');
    // demo-shop runs at the DR site and takes orders there.
    const drState = join(home, 'recovery', opId as string, 'shop-dr.json');
    const drUrl = await waitFor(
      'demo-shop at the DR site',
      () =>
        existsSync(drState) && (JSON.parse(readFileSync(drState, 'utf8')) as { url: string }).url,
      90_000,
    );
    const first = await get(drUrl, '/integrity');
    await waitFor(
      'orders at the DR site',
      async () => ((await get(drUrl, '/integrity')).count ?? 0) > (first.count ?? 0) + 5,
      60_000,
    );
    const status = await dr(['status', 'demo-shop', '--json'], {
      DR_HOME: home,
      DR_LOG_LEVEL: 'silent',
    });
    expect((JSON.parse(status.out) as { phase: string }).phase).toBe('paused');
    // Failback from chat: every order taken at the DR site comes home.
    chat('alice', 'failback demo-shop --emergency');
    await p.waitFor(/demo-shop \| demo-shop taking orders again/, 120_000);
    await p.waitFor(
      /agent demo-shop \| warn: demo-shop is protected again; replication resumes/,
      120_000,
    );
    const srcUrl = (
      JSON.parse(readFileSync(join(home, 'run', 'demo-shop.json'), 'utf8')) as { url: string }
    ).url;
    const audit = await waitFor(
      'the failback result in the audit log',
      async () => {
        const r = await dr(['audit', 'export'], { DR_HOME: home, DR_LOG_LEVEL: 'silent' });
        return r.out
          .split('\n')
          .filter(Boolean)
          .map(
            (l) =>
              JSON.parse(l) as {
                type: string;
                data: { job?: string; result?: Record<string, unknown> };
              },
          )
          .find((e) => e.type === 'result' && e.data.job === 'failback');
      },
      180_000,
    );
    // The failover's result in the audit log says the source was fenced.
    const exported = await dr(['audit', 'export'], { DR_HOME: home, DR_LOG_LEVEL: 'silent' });
    const failover = exported.out
      .split('\n')
      .filter(Boolean)
      .map(
        (l) =>
          JSON.parse(l) as {
            type: string;
            data: { job?: string; result?: { fence?: { fenced: boolean; detail: string } } };
          },
      )
      .find((e) => e.type === 'result' && e.data.job === 'failover');
    expect(failover?.data.result?.fence).toMatchObject({ fenced: true });
    expect(failover?.data.result?.fence?.detail).toContain('the source of demo-shop was fenced');
    const result = audit.data.result as {
      protection: { protected: boolean; detail: string };
      unfenced: boolean;
      quiesce: { how: string; mounts: string[] };
    };
    expect(result.unfenced).toBe(true);
    // On ext4 the DR copy was frozen (fsfreeze of its mount) for the final copy, not stopped;
    // the image-file demo has nothing mounted to freeze, so it was stopped.
    expect(result.quiesce.how).toBe(env.DR_DEMO_ROOTLESS ? 'stopped' : 'frozen');
    expect(result.protection.protected).toBe(true);
    expect(result.protection.detail).toMatch(/^protected again, RPO \d+ s/);
    // The last order the DR site took is at the source, identical; the database is intact.
    const back = await get(srcUrl, '/integrity');
    expect(back.integrity).toBe('ok');
    const lastAtDr = (await get(srcUrl, '/orders/last')).order;
    expect(lastAtDr?.id).toBeGreaterThan(first.max ?? 0);
    expect(back.count).toBe(back.max); // ids 1..N: no order lost, none twice
    // replication is continuous again
    await waitFor(
      'the agent to commit from the written-back state',
      async () => {
        const r = await dr(['status', 'demo-shop', '--json'], {
          DR_HOME: home,
          DR_LOG_LEVEL: 'silent',
        });
        return r.code === 0 && (JSON.parse(r.out) as { phase: string }).phase === 'continuous';
      },
      60_000,
    );
    // dr up itself ran on throughout, and stops cleanly (ext4: unmounted, loop device detached)
    expect(p.output()).not.toContain('stopping everything');
    await demo.stopAndCheck(p, state);
    const image = join(home, 'demo', 'demo-shop-disk.img');
    if (existsSync(image)) execFileSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  }

  it('the round trip from chat, image-file demo: fenced failover, orders at the DR site, failback brings them home, protected again', async () => {
    await roundTrip({ DR_DEMO_ROOTLESS: '1' });
  }, 600_000);

  it('the round trip from chat as root: ext4 unmounted at the source, fsck-clean at the end', async (ctx) => {
    const problem = await loopProblem();
    if (problem) return skipBecause(ctx, problem);
    await roundTrip({});
  }, 600_000);

  /**
   * The demo's plan `shop` from the console, as the README says: a scheduled drill ends in a drill
   * report that `dr report shop` gives, and `failover shop` (alice and bob approve) fences both
   * apps and recovers demo-shop, then the hook points the web front at it, then demo-web; and
   * `failback shop` brings both home, so nothing is left at the DR site.
   */
  it('the plan shop from the console: scheduled drills in its report, failover shop in order', async () => {
    const { dir, home } = demo;
    const { up: p, state } = await demo.upAndDrill({ DR_DEMO_ROOTLESS: '1' });
    const env = { DR_HOME: home, REDIS_URL: '', DR_GATEWAY: '', DR_LOG_LEVEL: 'warn' };
    const report = async () => {
      const r = await dr(['report', 'shop', '--json'], env);
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as { report: { summary: string; drills: { opId: string }[] } })
        .report;
    };
    const before = (await report()).drills.map((d) => d.opId);
    // Schedules are policy data: here one firing 20 s from now (a cron with seconds, UTC), so the
    // test waits neither for Sunday nor for the next whole minute, and no later firing drills an
    // app while the plan below fails it over.
    const at = new Date(Date.now() + 20_000);
    const cron = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    const soon = join(home, 'policies', 'soon-drill.yaml');
    await writeFile(
      soon,
      `policies:\n  - name: soon-prod-drill\n    when:\n      tier: prod\n    schedule:\n      cron: '${cron}'\n      command: drill\n`,
    );
    const scheduled = await waitFor(
      "the scheduled drills of the plan's apps in its report",
      async () => {
        const r = await report();
        const fresh = r.drills.filter((d) => !before.includes(d.opId));
        return fresh.length >= 2 ? r : undefined;
      },
      180_000,
    );
    expect(scheduled.summary).toMatch(/^shop, last 30 d; \d+ drill\(s\), \d+ passed/);
    await rm(soon);
    const out = join(dir, 'shop.png');
    const drawn = await dr(['report', 'shop', '--out', out], env);
    expect(drawn.code, drawn.err).toBe(0);
    expect(drawn.out).toContain(`wrote ${out}`);
    expect(readFileSync(out).subarray(1, 4).toString()).toBe('PNG');

    // failover shop, as the console's user, approved by alice and bob.
    const asked = chat(undefined, 'failover shop');
    const id = /needs 2 approval\(s\) from sre-oncall.*approve with `approve (A-\d+)`/s.exec(
      asked,
    )?.[1];
    expect(id, asked).toBeDefined();
    expect(chat('alice', `approve ${id}`)).toContain(`Approved ${id}: 1 of 2`);
    const granted = chat('bob', `approve ${id}`);
    const opId = /failover of shop queued as (op-[a-z0-9]+)/.exec(granted)?.[1];
    expect(opId, granted).toBeDefined();
    const run = await waitFor(
      'the plan to end',
      async () => {
        const r = await dr(['plan', 'status', opId as string, '--json'], env);
        const s = JSON.parse(r.out) as {
          run?: { phase: string; groups: { apps: { app: string; state: string }[] }[] };
        };
        return s.run && ['done', 'waiting-decision', 'failed'].includes(s.run.phase)
          ? s.run
          : undefined;
      },
      300_000,
    );
    expect(run.phase, JSON.stringify(run)).toBe('done');
    expect(run.groups.map((g) => g.apps.map((a) => `${a.app} ${a.state}`))).toEqual([
      ['demo-shop healthy'],
      ['demo-web healthy'],
    ]);
    await p.waitFor(/demo-shop \| demo-shop fenced: database closed/, 30_000);
    await p.waitFor(/demo-web \| demo-web fenced: volume closed/, 30_000);
    // The hook pointed the web front at the shop running at the DR site.
    const upstream = readFileSync(join(home, 'demo', 'web-upstream'), 'utf8').trim();
    expect(upstream).toMatch(new RegExp(`${join(home, 'recovery')}/op-[a-z0-9]+/shop-dr\\.json$`));

    // And home again as one plan, last group first (the weekend window waived, as in the README).
    const home2 = chat('alice', 'failback shop --emergency');
    const backId = /Failback of plan shop queued as (op-[a-z0-9]+)/.exec(home2)?.[1];
    expect(backId, home2).toBeDefined();
    const returned = await waitFor(
      'the plan failback to end',
      async () => {
        const r = await dr(['plan', 'status', backId as string, '--json'], env);
        const s = JSON.parse(r.out) as { run?: { phase: string } };
        return s.run && ['done', 'waiting-decision', 'failed'].includes(s.run.phase)
          ? s.run
          : undefined;
      },
      300_000,
    );
    expect(returned.phase, JSON.stringify(returned)).toBe('done');
    await p.waitFor(/demo-shop \| demo-shop taking orders again/, 120_000);
    await p.waitFor(/demo-web \| demo-web serving again/, 120_000);
    await demo.stopAndCheck(p, state);
  }, 900_000);
});
