// The rig of the `dr up --demo` tests: a fresh home per test, `dr up --demo` started and drilled,
// stopped and checked, and nothing (process, mount, loop device) left behind should a test fail.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, type TestContext } from 'vitest';
import type { UpState } from '../../core/up-state.js';
import { dr, freePort } from './lifeboat-home.js';
import { type DrProcess, pidAlive, startDr, stopAll } from './processes.js';
import { redisUnavailable } from './redis-server.js';
import { skipBecause } from './skip.js';

/** What `dr up` prints once everything runs. */
export const READY = /Ctrl-C stops everything/;
const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const sqliteMissing =
  spawnSync('sqlite3', ['-version']).status === 0
    ? undefined
    : 'sqlite3 is not installed (apt-get install -y sqlite3)';

/** Polls `dr status --json` (DR_HOME only) until demo-shop has a consistent point. */
export async function consistentPoint(home: string, ms = 60_000): Promise<{ label: string }> {
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

export interface DemoRig {
  /** The test's own folder, and the home in it (not there yet: --demo initialises it). */
  dir: string;
  home: string;
  /** The running `dr up`, stopped after the test unless the test stopped it. */
  up: DrProcess | undefined;
  /** The children `dr up` started, killed after the test should any be left. */
  pids: number[];
  /** Starts `dr up --demo`, waits until it is up, drills demo-shop with only DR_HOME set. */
  upAndDrill(env?: NodeJS.ProcessEnv): Promise<{
    up: DrProcess;
    state: UpState;
    point: { label: string };
    health: { ok: boolean; output: string };
  }>;
  /** `dr drill APP --wait --json` with only DR_HOME set: the drill's health check. */
  drillOf(app: string): Promise<{ ok: boolean; output: string }>;
  /** Stops `dr up` and checks nothing of it is left: processes, loop devices, mounts. */
  stopAndCheck(p: DrProcess, state: UpState): Promise<void>;
  /** One line typed into `dr chat` (as the user `as`, or the console's own); what it answered. */
  chat(as: string | undefined, line: string): string;
}

/** Registers the rig's hooks in the calling describe block; skips where Redis or sqlite3 is missing. */
export function useDemoRig(): DemoRig {
  const rig: DemoRig = {
    dir: '',
    home: '',
    up: undefined,
    pids: [],
    upAndDrill,
    drillOf,
    stopAndCheck,
    chat,
  };

  beforeEach(async (ctx: TestContext) => {
    const missing = redisUnavailable() ?? sqliteMissing;
    if (missing) skipBecause(ctx, missing);
    rig.dir = await mkdtemp(join(tmpdir(), 'lifeboat-demo-'));
    rig.home = join(rig.dir, 'home'); // not there yet: --demo initialises it
  });

  afterEach(async () => {
    await rig.up?.stop();
    rig.up = undefined;
    await stopAll();
    for (const pid of rig.pids.splice(0)) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    if (rig.dir) {
      const { home } = rig;
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
      await rm(rig.dir, { recursive: true, force: true });
    }
  });

  async function upAndDrill(env: NodeJS.ProcessEnv = {}) {
    const { home } = rig;
    const up = startDr(['up', '--demo', '--listen', `127.0.0.1:${await freePort()}`], {
      DR_HOME: home,
      REDIS_URL: '',
      DR_GATEWAY: '',
      DR_LOG_LEVEL: 'info',
      ...env,
    });
    rig.up = up;
    await up.waitFor(READY, 90_000);
    const state = JSON.parse(readFileSync(join(home, 'run', 'up.json'), 'utf8')) as UpState;
    rig.pids = state.children.map((c) => c.pid);
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

  async function drillOf(app: string): Promise<{ ok: boolean; output: string }> {
    const drill = startDr(['drill', app, '--wait', '--json'], {
      DR_HOME: rig.home,
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
    rig.up = undefined;
    expect(p.output()).toContain('nothing left running');
    expect(state.children.filter((c) => pidAlive(c.pid))).toEqual([]);
    const image = join(rig.home, 'demo', 'demo-shop-disk.img');
    if (existsSync(image)) {
      expect(execFileSync('losetup', ['-j', image], { encoding: 'utf8' })).toBe('');
    }
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(rig.home);
  }

  function chat(as: string | undefined, line: string): string {
    const env = { DR_HOME: rig.home, REDIS_URL: '', DR_GATEWAY: '', DR_LOG_LEVEL: 'warn' };
    const r = spawnSync(process.execPath, [bin, 'chat', ...(as ? ['--as', as] : [])], {
      input: `${line}\n`,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return `${r.stdout}${r.stderr}`;
  }

  return rig;
}
