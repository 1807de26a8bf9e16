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
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const READY = /Ctrl-C stops everything/;
const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const sqliteMissing =
  spawnSync('sqlite3', ['-version']).status === 0
    ? undefined
    : 'sqlite3 is not installed (apt-get install -y sqlite3)';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // gone
  }
}

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
    for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
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
      'agent demo-shop',
    ]);
    const point = await consistentPoint(home);
    const drill = startDr(['drill', 'demo-shop', '--wait', '--json'], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      DR_LOG_LEVEL: 'warn',
    });
    const code = await drill.exited;
    const json = drill.output().slice(drill.output().indexOf('{'));
    expect(code, drill.output()).toBe(0);
    const result = JSON.parse(json.slice(0, json.lastIndexOf('}') + 1)) as {
      health: { ok: boolean; output: string };
    };
    return { up, state, point, health: result.health };
  }

  async function stopAndCheck(p: DrProcess, state: UpState) {
    expect(await p.stop()).toBe(0);
    up = undefined;
    expect(p.output()).toContain('nothing left running');
    expect(state.children.filter((c) => alive(c.pid))).toEqual([]);
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
  });

  it('as a non-root user: falls back to an image file with the app hook, and says so', async () => {
    const { up: p, state, point, health } = await upAndDrill({ DR_DEMO_ROOTLESS: '1' });
    expect(p.output()).toContain(
      "DR_DEMO_ROOTLESS=1 is set, so demo-shop's database is an image file",
    );
    expect(point.label).toBe('app-consistent');
    expect(health.output).toMatch(/^integrity ok; orders 1-(\d+) recovered, #\1 identical/);
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
  });

  it('failover demo-shop waits for alice and bob, then the agent stands by and the rest runs on', async () => {
    const { up: p } = await upAndDrill({ DR_DEMO_ROOTLESS: '1' });
    const chat = (as: string | undefined, line: string) => {
      const r = spawnSync(process.execPath, [bin, 'chat', ...(as ? ['--as', as] : [])], {
        input: `${line}\n`,
        env: { ...process.env, DR_HOME: home, REDIS_URL: '', DR_GATEWAY: '', DR_LOG_LEVEL: 'warn' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return `${r.stdout}${r.stderr}`;
    };
    const asked = chat(undefined, 'failover demo-shop');
    const id = /needs 2 approval\(s\) from sre-oncall.*approve with `approve (A-\d+)`/.exec(
      asked,
    )?.[1];
    expect(id, asked).toBeDefined();
    expect(chat('alice', `approve ${id}`)).toContain(`Approved ${id}: 1 of 2`);
    chat('bob', `approve ${id}`);
    await p.waitFor(
      /agent demo-shop \| warn: replication of demo-shop stopped: it was failed over; standing by/,
      90_000,
    );
    const status = await dr(['status', 'demo-shop', '--json'], {
      DR_HOME: home,
      DR_LOG_LEVEL: 'silent',
    });
    expect((JSON.parse(status.out) as { phase: string }).phase).toBe('paused');
    // dr up itself runs on: the worker, gateway and demo service are still there.
    expect(p.child.exitCode).toBe(null);
    expect(p.output()).not.toContain('stopping everything');
  });

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
