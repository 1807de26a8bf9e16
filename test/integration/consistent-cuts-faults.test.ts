import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quiet, until, useCutsRig } from '../helpers/cuts-rig.js';
import { dr } from '../helpers/lifeboat-home.js';
import { tool } from '../helpers/loop-device.js';
import { startDr } from '../helpers/processes.js';

describe('consistent cuts with block tracing and fsfreeze', () => {
  const cuts = useCutsRig();

  it('a failing or hanging freeze hook leaves the point fuzzy, always thaws, and the next cut tries again', async () => {
    const { t } = cuts;
    const { device, mount } = await cuts.protect();
    const marks = join(t.dir, 'marks');
    await writeFile(marks, '');
    await cuts.reprotect(
      device,
      mount,
      '--quiesce-freeze',
      `echo freeze >> ${marks}; exit 3`,
      '--quiesce-thaw',
      `echo thaw >> ${marks}`,
    );
    await t.startGateway();
    const failing = await cuts.onceScan();
    expect(failing.code).toBe(0);
    expect(JSON.parse(failing.out).point.label).toBe('fuzzy');
    const again = await cuts.onceScan();
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
    await cuts.reprotect(
      device,
      mount,
      '--quiesce-freeze',
      'sleep 30',
      '--quiesce-thaw',
      `echo thaw-after-hang >> ${marks}`,
      '--quiesce-timeout',
      '500ms',
    );
    const hung = await cuts.onceScan();
    expect(JSON.parse(hung.out).point.label).toBe('fuzzy');
    expect(await readFile(marks, 'utf8')).toContain('thaw-after-hang');
    await writeFile(join(mount, 'after-hang'), 'ok');
    // With a working hook the point is app-consistent, and restore latest picks it.
    await cuts.reprotect(device, mount, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true');
    const good = await cuts.onceScan();
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
    const { t, rig } = cuts;
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
    const { t, rig } = cuts;
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
    const { t, rig } = cuts;
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
