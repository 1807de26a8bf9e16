import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { UpState } from '../../core/up-state.js';
import { consistentPoint, READY, useDemoRig } from '../helpers/demo-rig.js';
import { dr, freePort } from '../helpers/lifeboat-home.js';
import { loopProblem } from '../helpers/loop-device.js';
import { startDr } from '../helpers/processes.js';
import { skipBecause } from '../helpers/skip.js';

// The round trips and the plan from chat are in up-demo-failover.test.ts (the same rig).
describe('dr up --demo', () => {
  const demo = useDemoRig();

  it('as root: ext4 on a loop device, fsfreeze and tracing; a drill checks the recovered orders', async (ctx) => {
    const { home } = demo;
    const problem = await loopProblem();
    if (problem) return skipBecause(ctx, problem);
    const { up: p, state, point, health } = await demo.upAndDrill();
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
    await demo.stopAndCheck(p, state);
  }, 300_000);

  it('as a non-root user: falls back to an image file with the app hook, and says so', async () => {
    const { home } = demo;
    const { up: p, state, point, health } = await demo.upAndDrill({ DR_DEMO_ROOTLESS: '1' });
    expect(p.output()).toContain(
      "DR_DEMO_ROOTLESS=1 is set, so demo-shop's database is an image file",
    );
    expect(point.label).toBe('app-consistent');
    expect(health.output).toMatch(/^integrity ok; orders 1-(\d+) recovered, #\1 identical/);
    // The second app, the web front, is drilled the same way; its check reads the page views.
    expect(p.output()).toMatch(/demo-web +the shop's web front, page views in the image file/);
    const web = await demo.drillOf('demo-web');
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
    await demo.stopAndCheck(p, state);
    // A second start of the same home keeps the demo and its orders.
    const again = startDr(['up', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_LOG_LEVEL: 'info',
      DR_DEMO_ROOTLESS: '1',
    });
    demo.up = again;
    await again.waitFor(READY, 90_000);
    expect(again.output()).toContain('demo-shop taking orders');
    expect(again.output()).toMatch(/demo-web serving at \S+ \(views in \S+, [1-9]\d* so far\)/);
  }, 300_000);

  it('as root where loop devices do not really work: falls back to the image file and says why', async (ctx) => {
    const { dir, home } = demo;
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
    const up = startDr(['up', '--demo', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      PATH: `${fake}:${process.env.PATH}`,
    });
    demo.up = up;
    await up.waitFor(READY, 90_000);
    demo.pids = (
      JSON.parse(readFileSync(join(home, 'run', 'up.json'), 'utf8')) as UpState
    ).children.map((c) => c.pid);
    expect(up.output()).toContain('cannot find an unused loop device');
    expect(up.output()).toContain("so demo-shop's database is an image file");
    expect(up.output()).toMatch(/demo-shop +orders on SQLite in the image file/);
    expect(await consistentPoint(home)).toMatchObject({ label: 'app-consistent' });
  });
});
