import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { PointInfo } from '../../replicator/transport/wire-types.js';
import { dr, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { loopProblem, Rig, tool } from '../helpers/loop-device.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { checkRecordPrefix } from '../helpers/records.js';
import { skipBecause } from '../helpers/skip.js';
import { until as untilAnswer } from '../helpers/wait-for.js';

const writerScript = fileURLToPath(new URL('../fixtures/record-writer.mjs', import.meta.url));
const quiet = { DR_LOG_LEVEL: 'silent' };

let problem: string | undefined;
beforeAll(async () => {
  problem = await loopProblem();
});

interface Writer {
  child: ChildProcess;
  stop: () => Promise<number>;
}

function startWriter(file: string, rate = 200): Writer {
  const child = spawn(process.execPath, [writerScript, file, String(rate)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      return Number(out.trim());
    },
  };
}

/** Polls until `probe` answers, failing after `ms`. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) =>
  untilAnswer(what, probe, ms);

describe('consistent cuts with block tracing and fsfreeze', () => {
  let t: TestHome;
  let rig: Rig;
  let writers: Writer[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    t = await testHome();
    rig = new Rig(t.dir);
  });
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.stop().catch(() => 0); // a test may have stopped it
    await stopAll();
    await rig?.cleanup();
    await t?.cleanup();
  });

  /** Restores a point, checks the file system and reads the record prefix from it. */
  async function checkPoint(point: number): Promise<number> {
    const out = join(t.dir, `point-${point}.img`);
    const r = await dr(
      [
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        String(point),
        '--volume',
        'data',
        '--to',
        out,
        '--force',
      ],
      quiet,
    );
    expect(r.err).toBe('');
    await tool('e2fsck', ['-n', '-f', out]); // exits non-zero (and throws) on any inconsistency
    const mnt = join(t.dir, `point-${point}-mnt`);
    await mkdir(mnt, { recursive: true });
    await tool('mount', ['-o', 'ro,loop', out, mnt]);
    try {
      return checkRecordPrefix(await readFile(join(mnt, 'records.log')));
    } finally {
      await tool('umount', [mnt]);
    }
  }

  /** `dr agent --app web --once --json --tracker scan`, quietly. */
  const onceScan = () =>
    dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json', '--tracker', 'scan'], quiet);

  /** Re-adds app web on the device, frozen at the mount point, with these quiesce options. */
  const reprotect = (device: string, mount: string, ...quiesce: string[]) =>
    dr([
      '--home',
      t.home,
      'app',
      'add',
      'web',
      '--force',
      '--volume',
      `data=${device}`,
      '--fsfreeze',
      mount,
      ...quiesce,
    ]);

  /** An ext4 on a 64 MiB loop device, protected as app web with fsfreeze on its mount point. */
  async function protect(): Promise<{ device: string; mount: string; tracefs: string }> {
    const tracefs = await rig.tracefs();
    const { device, mount } = await rig.loop('data', 128, true);
    const m = mount as string;
    const r = await dr([
      '--home',
      t.home,
      'app',
      'add',
      'web',
      '--volume',
      `data=${device}`,
      '--fsfreeze',
      m,
    ]);
    expect(r.err).toBe('');
    return { device, mount: m, tracefs };
  }

  it('every crash-consistent point restores to a clean ext4 holding a gap-free prefix of the records', async () => {
    const { mount, tracefs } = await protect();
    await t.startGateway();
    const writer = startWriter(join(mount, 'records.log'), 100);
    writers.push(writer);
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'trace', '--interval', '300ms'], {
      DR_HOME: t.home,
      DR_TRACEFS: tracefs,
    });
    const client = await t.client();
    await until('five consistent points', async () => {
      const pts = await client.points('web').catch(() => [] as PointInfo[]);
      return pts.filter((p) => p.label === 'crash-consistent').length >= 5 ? pts : undefined;
    });
    const written = await writer.stop();
    writers = [];
    const stoppedAt = Date.now();
    // One more cut after the writer stopped: a new point, or the agent's word that nothing
    // changed since the newest one (it commits no point for an unchanged disk).
    const last = (await client.points('web')).at(-1)?.id ?? 0;
    await until('a cut after the writer stopped', async () => {
      const pts = await client.points('web');
      const [st] = await client.status('web');
      const unchangedAt = Date.parse(st?.lastConsistentPoint?.unchangedAt ?? '');
      return (pts.at(-1)?.id ?? 0) > last + 1 || unchangedAt > stoppedAt ? pts : undefined;
    });
    const status = (await client.status('web'))[0];
    expect(status?.trackers.data?.kind).toBe('trace');
    expect(status?.lastFreezeMs).toBeGreaterThanOrEqual(0);
    expect(await agent.stop()).toBe(0);

    const points = (await client.points('web')).filter((p) => p.label === 'crash-consistent');
    expect(points.length).toBeGreaterThanOrEqual(5);
    let previous = 0;
    for (const p of points) {
      const n = await checkPoint(p.id);
      expect(n).toBeGreaterThanOrEqual(previous); // later points never lose records
      previous = n;
    }
    expect(previous).toBe(written); // the last point holds every record the writer made
    expect(agent.output()).toMatch(/"label":"crash-consistent"/);
  });

  it('after kill -9 of the agent mid-round, the restarted agent resyncs by scan, reports it, and loses no change', async () => {
    const { mount, tracefs } = await protect();
    await t.startGateway();
    const client = await t.client();
    const writer = startWriter(join(mount, 'records.log'), 100);
    writers.push(writer);
    const env = { DR_HOME: t.home, DR_TRACEFS: tracefs };
    const first = startDr(
      ['agent', '--app', 'web', '--tracker', 'trace', '--interval', '200ms'],
      env,
    );
    await first.waitFor(/recovery point committed|no change since the last point/, 60_000);
    await sleep(300); // mid-round, most likely
    await first.kill9();
    await sleep(1000); // the writer goes on while no agent runs
    const second = startDr(
      ['agent', '--app', 'web', '--tracker', 'trace', '--interval', '200ms'],
      env,
    );
    await second.waitFor(/resynced by scan/, 60_000);
    const written = await writer.stop();
    writers = [];
    const after = (await client.points('web')).at(-1)?.id ?? 0;
    await until('a point after the writer stopped', async () => {
      const pts = await client.points('web');
      return (pts.at(-1)?.id ?? 0) > after + 1 ? pts : undefined;
    });
    const [status] = await client.status('web');
    expect(status?.lastResync?.reason).toBe('tracker started');
    expect(status?.lastResync?.size).toBe(128 * 1024 * 1024);
    expect(status?.lastResync?.bytes).toBeLessThan(128 * 1024 * 1024);
    expect(await second.stop()).toBe(0);
    const latest = (await client.points('web'))
      .filter((p) => p.label === 'crash-consistent')
      .at(-1);
    expect(await checkPoint(latest?.id ?? 0)).toBe(written);
  });

  it('falls back to scan where tracefs is missing, says why, and --tracker trace refuses with the remedy', async () => {
    const { device } = await rig.loop('raw', 8);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${device}`]);
    await t.startGateway();
    const empty = join(t.dir, 'no-tracefs');
    await mkdir(empty);
    const auto = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], {
      ...quiet,
      DR_TRACEFS: empty,
    });
    expect(auto.code).toBe(0);
    const forced = await dr(
      ['--home', t.home, 'agent', '--app', 'web', '--once', '--tracker', 'trace'],
      { ...quiet, DR_TRACEFS: empty },
    );
    expect(forced.code).toBe(2);
    expect(forced.err).toContain(`tracefs is not mounted at ${empty}`);
    expect(forced.err).toContain('mount -t tracefs');
    // A running agent shows the fallback and its reason in dr status.
    const agent = startDr(['agent', '--app', 'web', '--interval', '300ms'], {
      DR_HOME: t.home,
      DR_TRACEFS: empty,
    });
    await agent.waitFor(/recovery point committed|no change since the last point/);
    const client = await t.client();
    const s = await until('the tracker in status', async () => {
      const [st] = await client.status('web');
      return st?.trackers.data ? st : undefined;
    });
    expect(s.trackers.data).toMatchObject({
      kind: 'scan',
      reason: expect.stringContaining('tracefs is not mounted'),
    });
    await agent.stop();
  });

  it('a failing or hanging freeze hook leaves the point fuzzy, always thaws, and the next cut tries again', async () => {
    const { device, mount } = await protect();
    const marks = join(t.dir, 'marks');
    await writeFile(marks, '');
    await reprotect(
      device,
      mount,
      '--quiesce-freeze',
      `echo freeze >> ${marks}; exit 3`,
      '--quiesce-thaw',
      `echo thaw >> ${marks}`,
    );
    await t.startGateway();
    const failing = await onceScan();
    expect(failing.code).toBe(0);
    expect(JSON.parse(failing.out).point.label).toBe('fuzzy');
    const again = await onceScan();
    expect(JSON.parse(again.out).point.label).toBe('fuzzy');
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual([
      'freeze',
      'thaw',
      'freeze',
      'thaw',
    ]);
    // The file system is not left frozen: a write goes through.
    await writeFile(join(mount, 'after'), 'ok');
    // A hanging hook: the timeout ends it and the thaw still runs.
    await reprotect(
      device,
      mount,
      '--quiesce-freeze',
      'sleep 30',
      '--quiesce-thaw',
      `echo thaw-after-hang >> ${marks}`,
      '--quiesce-timeout',
      '500ms',
    );
    const hung = await onceScan();
    expect(JSON.parse(hung.out).point.label).toBe('fuzzy');
    expect(await readFile(marks, 'utf8')).toContain('thaw-after-hang');
    await writeFile(join(mount, 'after-hang'), 'ok');
    // With a working hook the point is app-consistent, and restore latest picks it.
    await reprotect(device, mount, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true');
    const good = await onceScan();
    const goodPoint = JSON.parse(good.out).point;
    expect(goodPoint.label).toBe('app-consistent');
    const r = await dr(
      [
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        'latest',
        '--volume',
        'data',
        '--to',
        join(t.dir, 'x.img'),
        '--json',
      ],
      quiet,
    );
    expect(JSON.parse(r.out).point).toBe(goodPoint.id);
  });

  it('reports a resync after the trace buffer overruns under a write storm', async () => {
    const { device } = await rig.loop('storm', 16);
    const tracefs = await rig.tracefs();
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${device}`]);
    await t.startGateway();
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'trace', '--interval', '2s'], {
      DR_HOME: t.home,
      DR_TRACEFS: tracefs,
      DR_TRACE_BUFFER_KIB: '4',
    });
    // Bounds are generous: the machine may be busy with other suites (waits end on the event).
    await agent.waitFor(/recovery point committed|no change since the last point/, 60_000);
    const client = await t.client();
    // The agent is held still (SIGSTOP) while many small direct writes go to the device, so the
    // smallest trace buffer overruns whatever the machine's load: a busy machine once let a
    // running agent keep up with the writes, and no overrun came.
    const pid = agent.child.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      await tool(
        'dd',
        ['if=/dev/urandom', `of=${device}`, 'bs=512', 'count=2000', 'oflag=direct', 'conv=notrunc'],
        110_000,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const s = await until(
      'a reported resync after overrun',
      async () => {
        const [st] = await client.status('web');
        return st?.lastResync && /overran|lost/.test(st.lastResync.reason) ? st : undefined;
      },
      120_000,
    );
    expect(s.lastResync?.size).toBe(16 * 1024 * 1024);
    await agent.stop();
    const out = join(t.dir, 'storm.img');
    await dr(
      [
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        'latest',
        '--allow-fuzzy',
        '--volume',
        'data',
        '--to',
        out,
      ],
      quiet,
    );
    expect((await readFile(out)).equals(await readFile(device))).toBe(true);
  }, 360_000);

  it('says a volume was detached under a running agent, and keeps running', async () => {
    const { device, image } = await rig.loop('gone', 8);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${device}`]);
    await t.startGateway();
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '300ms'], {
      DR_HOME: t.home,
    });
    await agent.waitFor(/recovery point committed|no change since the last point/);
    // The backing storage goes away: the device reports no media.
    await truncate(image, 0);
    await tool('losetup', ['-c', device]);
    const client = await t.client();
    const s = await until('stalled', async () => {
      const [st] = await client.status('web');
      return st?.phase === 'stalled' ? st : undefined;
    });
    expect(s.reason).toContain(`volume data (${device}) has no media: the device was detached`);
    expect(agent.child.exitCode).toBeNull(); // still running
    await agent.stop();
  });

  it('refuses a second agent on the same device, naming the first', async () => {
    const { device } = await rig.loop('shared', 8);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${device}`]);
    await dr(['--home', t.home, 'app', 'add', 'web2', '--volume', `data=${device}`]);
    await t.startGateway();
    const first = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '1s'], {
      DR_HOME: t.home,
    });
    await first.waitFor(/recovery point committed|no change since the last point/);
    const second = startDr(['agent', '--app', 'web2', '--once', '--tracker', 'scan'], {
      DR_HOME: t.home,
    });
    expect(await second.exited).toBe(2);
    expect(second.output()).toMatch(
      new RegExp(
        `volume data \\(${device}\\) is already replicated by another agent \\(app web, pid \\d+\\)`,
      ),
    );
    await first.stop();
  });
});
