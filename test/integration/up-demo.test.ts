import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { UpState } from '../../core/up-state.js';
import { dr, freePort } from '../helpers/lifeboat-home.js';
import { loopProblem } from '../helpers/loop-device.js';
import { type DrProcess, pidAlive, startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const READY = /Ctrl-C stops everything/;
const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const sqliteMissing =
  spawnSync('sqlite3', ['-version']).status === 0
    ? undefined
    : 'sqlite3 is not installed (apt-get install -y sqlite3)';

/** Polls `dr status --json` (DR_HOME only) until demo-shop has a consistent point. */
async function consistentPoint(home: string, ms = 60_000): Promise<{ label: string }> {
  const until = Date.now() + ms;
  for (;;) {
    const r = await dr(['status', 'demo-shop', '--json'], {
      DR_HOME: home,
      DR_LOG_LEVEL: 'silent',
    });
    if (r.code === 0) {
      const s = JSON.parse(r.out) as { lastConsistentPoint: { label: string } | null };
      if (s.lastConsistentPoint) return s.lastConsistentPoint;
    }
    if (Date.now() > until) throw new Error(`no consistent point of demo-shop: ${r.out}${r.err}`);
    await sleep(500);
  }
}

describe('dr up --demo', () => {
  let dir: string;
  let home: string;
  let up: DrProcess | undefined;
  let pids: number[] = [];

  beforeEach(async (ctx: TestContext) => {
    const missing = redisUnavailable() ?? sqliteMissing;
    if (missing) skipBecause(ctx, missing);
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-demo-'));
    home = join(dir, 'home'); // not there yet: --demo initialises it
  });

  afterEach(async () => {
    await up?.stop();
    up = undefined;
    await stopAll();
    for (const pid of pids.splice(0)) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    if (dir) {
      // Should a test fail half-way, leave no mount or loop device behind.
      spawnSync('umount', [join(home, 'demo', 'mnt')]);
      spawnSync('umount', [join(home, 'demo', 'tracefs')]);
      const image = join(home, 'demo', 'demo-shop-disk.img');
      for (const line of spawnSync('losetup', ['-j', image], { encoding: 'utf8' }).stdout?.split(
        '\n',
      ) ?? []) {
        const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
        if (dev) spawnSync('losetup', ['-d', dev]);
      }
      await rm(dir, { recursive: true, force: true });
    }
  });

  /** Starts `dr up --demo`, waits until it is up, drills demo-shop with only DR_HOME set. */
  async function upAndDrill(env: NodeJS.ProcessEnv = {}) {
    up = startDr(['up', '--demo', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      DR_LOG_LEVEL: 'info',
      ...env,
    });
    await up.waitFor(READY, 90_000);
    const state = JSON.parse(readFileSync(join(home, 'run', 'up.json'), 'utf8')) as UpState;
    pids = state.children.map((c) => c.pid);
    expect(state.children.map((c) => c.name)).toEqual([
      'redis',
      'gateway',
      'worker',
      'serve',
      'demo-shop',
      'demo-web',
      'agent demo-shop',
      'agent demo-web',
    ]);
    const point = await consistentPoint(home);
    return { up, state, point, health: await drillOf('demo-shop') };
  }

  /** `dr drill APP --wait --json` with only DR_HOME set: the drill's health check. */
  async function drillOf(app: string): Promise<{ ok: boolean; output: string }> {
    const drill = startDr(['drill', app, '--wait', '--json'], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      DR_LOG_LEVEL: 'warn',
    });
    const code = await drill.exited;
    const json = drill.output().slice(drill.output().indexOf('{'));
    expect(code, drill.output()).toBe(0);
    return (
      JSON.parse(json.slice(0, json.lastIndexOf('}') + 1)) as {
        health: { ok: boolean; output: string };
      }
    ).health;
  }

  async function stopAndCheck(p: DrProcess, state: UpState) {
    expect(await p.stop()).toBe(0);
    up = undefined;
    expect(p.output()).toContain('nothing left running');
    expect(state.children.filter((c) => pidAlive(c.pid))).toEqual([]);
    const image = join(home, 'demo', 'demo-shop-disk.img');
    if (existsSync(image)) {
      expect(execFileSync('losetup', ['-j', image], { encoding: 'utf8' })).toBe('');
    }
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(home);
  }

  it('as root: ext4 on a loop device, fsfreeze and tracing; a drill checks the recovered orders', async (ctx) => {
    const problem = await loopProblem();
    if (problem) return skipBecause(ctx, problem);
    const { up: p, state, point, health } = await upAndDrill();
    expect(p.output()).toMatch(/demo-shop +orders on SQLite in ext4 on \/dev\/loop\d+/);
    expect(point.label).toBe('crash-consistent');
    expect(health.ok).toBe(true);
    expect(health.output).toMatch(
      /^integrity ok; orders 1-(\d+) recovered, #\1 identical to the source's; data-loss window \d+\.\d s \(\d+ newer orders? at the source\)/,
    );
    expect(health.output).toContain('integrity_check: ok');
    // The people on call and the app's policy facts are in dr.yaml for the engine.
    const yaml = readFileSync(join(home, 'dr.yaml'), 'utf8');
    expect(yaml).toMatch(/alice:\n\s+ids:\n\s+- console:alice/);
    expect(yaml).toMatch(/demo-shop:\n\s+tier: prod/);
    await stopAndCheck(p, state);
  }, 300_000);

  it('as a non-root user: falls back to an image file with the app hook, and says so', async () => {
    const { up: p, state, point, health } = await upAndDrill({ DR_DEMO_ROOTLESS: '1' });
    expect(p.output()).toContain(
      "DR_DEMO_ROOTLESS=1 is set, so demo-shop's database is an image file",
    );
    expect(point.label).toBe('app-consistent');
    expect(health.output).toMatch(/^integrity ok; orders 1-(\d+) recovered, #\1 identical/);
    // The second app, the web front, is drilled the same way; its check reads the page views.
    expect(p.output()).toMatch(/demo-web +the shop's web front, page views in the image file/);
    const web = await drillOf('demo-web');
    expect(web.ok).toBe(true);
    expect(web.output).toMatch(
      /^page views \d+-\d+ recovered, all sound; data-loss window \d+\.\d s|^the recovered copy holds no page views yet/,
    );
    // The plan: shown, explained with plan-consistent points, its hook real and harmless.
    const env = { DR_HOME: home, DR_LOG_LEVEL: 'warn' };
    const show = await dr(['plan', 'show', 'shop'], env);
    expect(show.code, show.err).toBe(0);
    expect(show.out).toContain('order: [demo-shop] → [demo-web]');
    const explain = await dr(['plan', 'explain', 'shop'], env);
    expect(explain.code, explain.err).toBe(0);
    expect(explain.out).toMatch(/points \(plan-consistent, all at or before \S+, skew /);
    expect(explain.out).toMatch(/run hook `'\S+plan-hook\.sh'`/);
    const hook = spawnSync(join(home, 'demo', 'plan-hook.sh'), { encoding: 'utf8' });
    expect(hook.status, hook.stderr).toBe(0);
    expect(hook.stdout).toMatch(
      /^demo-web shows the demo-shop at the source: http:\/\/127\.0\.0\.1:\d+/,
    );
    expect(readFileSync(join(home, 'demo', 'web-upstream'), 'utf8').trim()).toBe(
      join(home, 'run', 'demo-shop.json'),
    );
    const report = await dr(['report', 'shop', '--days', '7'], env);
    expect(report.code, report.err).toBe(0);
    expect(report.out).toMatch(/^shop, last 7 d; 2 drill\(s\), 2 passed/);
    // The plan drilled as one operation: demo-shop, the hook, then demo-web, each healthy.
    const planDrill = startDr(['drill', 'shop', '--wait'], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      DR_LOG_LEVEL: 'warn',
    });
    expect(await planDrill.exited, planDrill.output()).toBe(0);
    await stopAndCheck(p, state);
    // A second start of the same home keeps the demo and its orders.
    const again = startDr(['up', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_LOG_LEVEL: 'info',
      DR_DEMO_ROOTLESS: '1',
    });
    up = again;
    await again.waitFor(READY, 90_000);
    expect(again.output()).toContain('demo-shop taking orders');
    expect(again.output()).toMatch(/demo-web serving at \S+ \(views in \S+, [1-9]\d* so far\)/);
  }, 300_000);

  /**
   * The README's round trip, from chat: failover (alice and bob approve) fences demo-shop at the
   * source, demo-shop takes orders at the DR site, failback brings every one of them home, starts
   * demo-shop at the source again, and replication resumes by itself.
   */
  async function roundTrip(env: NodeJS.ProcessEnv) {
    const { up: p, state } = await upAndDrill(env);
    const chat = (as: string | undefined, line: string) => {
      const r = spawnSync(process.execPath, [bin, 'chat', ...(as ? ['--as', as] : [])], {
        input: `${line}\n`,
        env: { ...process.env, DR_HOME: home, REDIS_URL: '', DR_GATEWAY: '', DR_LOG_LEVEL: 'warn' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return `${r.stdout}${r.stderr}`;
    };
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
    await stopAndCheck(p, state);
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
    const { up: p, state } = await upAndDrill({ DR_DEMO_ROOTLESS: '1' });
    const env = { DR_HOME: home, REDIS_URL: '', DR_GATEWAY: '', DR_LOG_LEVEL: 'warn' };
    const chat = (as: string | undefined, line: string) => {
      const r = spawnSync(process.execPath, [bin, 'chat', ...(as ? ['--as', as] : [])], {
        input: `${line}\n`,
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return `${r.stdout}${r.stderr}`;
    };
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
    await stopAndCheck(p, state);
  }, 900_000);

  it('as root where loop devices do not really work: falls back to the image file and says why', async (ctx) => {
    if (process.getuid?.() !== 0)
      return skipBecause(ctx, 'the loop-device path is taken only as root');
    const fake = join(dir, 'fake-bin');
    await mkdir(fake);
    // A losetup that exists but finds no free device, as in a container without loop devices.
    await writeFile(
      join(fake, 'losetup'),
      '#!/bin/sh\ncase "$1" in --version|-j) exit 0 ;; esac\necho "losetup: cannot find an unused loop device" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    up = startDr(['up', '--demo', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      PATH: `${fake}:${process.env.PATH}`,
    });
    await up.waitFor(READY, 90_000);
    pids = (JSON.parse(readFileSync(join(home, 'run', 'up.json'), 'utf8')) as UpState).children.map(
      (c) => c.pid,
    );
    expect(up.output()).toContain('cannot find an unused loop device');
    expect(up.output()).toContain("so demo-shop's database is an image file");
    expect(up.output()).toMatch(/demo-shop +orders on SQLite in the image file/);
    expect(await consistentPoint(home)).toMatchObject({ label: 'app-consistent' });
  });
});
