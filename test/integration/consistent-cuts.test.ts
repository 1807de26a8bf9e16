import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { PointInfo } from '../../replicator/transport/wire-types.js';
import { quiet, startWriter, until, useCutsRig } from '../helpers/cuts-rig.js';
import { dr } from '../helpers/lifeboat-home.js';
import { startDr } from '../helpers/processes.js';

// Freeze hooks that fail, trace overruns, detached volumes and a second agent are in
// consistent-cuts-faults.test.ts (the same rig).
describe('consistent cuts with block tracing and fsfreeze', () => {
  const cuts = useCutsRig();

  it('every crash-consistent point restores to a clean ext4 holding a gap-free prefix of the records', async () => {
    const { t, writers } = cuts;
    const { mount, tracefs } = await cuts.protect();
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
    writers.splice(0);
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
      const n = await cuts.checkPoint(p.id);
      expect(n).toBeGreaterThanOrEqual(previous); // later points never lose records
      previous = n;
    }
    expect(previous).toBe(written); // the last point holds every record the writer made
    expect(agent.output()).toMatch(/"label":"crash-consistent"/);
  });

  it('after kill -9 of the agent mid-round, the restarted agent resyncs by scan, reports it, and loses no change', async () => {
    const { t, writers } = cuts;
    const { mount, tracefs } = await cuts.protect();
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
    writers.splice(0);
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
    expect(await cuts.checkPoint(latest?.id ?? 0)).toBe(written);
  });

  it('falls back to scan where tracefs is missing, says why, and --tracker trace refuses with the remedy', async () => {
    const { t, rig } = cuts;
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
});
