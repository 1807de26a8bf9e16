// A failover ends the app's kept drill servers before it launches its own (local provider, real worker and Redis).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditLine } from '../../engine/audit-line.js';
import { AuditLog } from '../../engine/audit-log.js';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import type { OperationEvent, OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { dr, updateConfig } from '../helpers/lifeboat-home.js';
import { pidAlive, startDr } from '../helpers/processes.js';
import {
  exists,
  operationEvents,
  protectServedApp,
  until,
  volumeServerPids,
} from '../helpers/recovery-rig.js';
import { recoverySuite } from '../helpers/recovery-suite.js';

describe('a failover or a new drill ends the app’s kept drill servers first', () => {
  const s = recoverySuite();

  /** `web` protected, served on one port by drill and failover alike; its worker running. */
  async function setUp(): Promise<number> {
    const port = await protectServedApp(s.t, 'web');
    // Full images: the drill server keeps its disks whatever happens to the worker's mounts.
    await updateConfig(s.t.home, (doc) => doc.setIn(['recovery', 'instant'], false));
    const w = startDr(['worker', '--concurrency', '2'], s.env);
    await w.waitFor(/worker ready/);
    return port;
  }

  async function keptDrill(): Promise<OperationResult> {
    const r = await dr(['drill', 'web', '--keep', '30m', '--wait', '--json'], s.env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const drill = JSON.parse(r.out) as OperationResult;
    expect(await (await s.client.queue.getJob(`${drill.opId}-cleanup`))?.getState()).toBe(
      'delayed',
    );
    return drill;
  }

  /** Every event of the stream in order. */
  async function stream(): Promise<OperationEvent[]> {
    const all = await s.conn.xrange(s.client.keys.events, '-', '+');
    return all.map(([, f]) => parseEvent(f)).filter((e): e is OperationEvent => e !== undefined);
  }

  it('removes the drill server and its pending cleanup before the failover launches, and says so', async () => {
    const port = await setUp();
    const drill = await keptDrill();
    const drillPid = Number(drill.server.details.pid);
    expect(pidAlive(drillPid)).toBe(true);

    const f = await dr(['failover', 'web', '--wait'], s.env);
    expect(f.err).toBe('');
    expect(f.code).toBe(0);
    expect(f.out).toContain(`  ended drill server of ${drill.opId} first`);
    const opId = /^(op-[a-z0-9]+):/m.exec(f.out)?.[1] ?? '';
    const end = await operationEvents(s.conn, s.client).finished(opId, 'failover');
    const result = end.result as OperationResult;
    expect(result.drills).toEqual([
      {
        opId: drill.opId,
        ended: true,
        removed: expect.arrayContaining([join(s.t.home, 'recovery', drill.opId)]),
        detail: `ended drill server of ${drill.opId} first`,
      },
    ]);

    // In order: the drill's cleanup ended, the failover said so, and only then launched.
    const events = await stream();
    const at = (p: (e: OperationEvent) => boolean) => events.findIndex(p);
    const cleaned = at(
      (e) => e.opId === drill.opId && e.job === 'cleanup' && e.type === 'finished',
    );
    const said = at((e) => e.opId === opId && e.step === 'drill-ended');
    const launch = at((e) => e.opId === opId && e.step === 'launch');
    expect(cleaned).toBeGreaterThanOrEqual(0);
    expect(said).toBeGreaterThan(cleaned);
    expect(launch).toBeGreaterThan(said);
    expect(events[cleaned]?.result).toMatchObject({ opId: drill.opId, endedFor: opId });
    expect(events[said]?.detail).toBe(`ended drill server of ${drill.opId} first`);
    // The same cleanup ran once: no second one is still to come.
    expect(await s.client.queue.getJob(`${drill.opId}-cleanup`)).toBeUndefined();
    expect(events.filter((e) => e.opId === drill.opId && e.job === 'cleanup')).toHaveLength(2);

    // The drill is gone; the failover is healthy on its own server.
    expect(pidAlive(drillPid)).toBe(false);
    expect(await exists(join(s.t.home, 'recovery', drill.opId))).toBe(false);
    expect(await volumeServerPids(s.t.dir)).toEqual([Number(result.server.details.pid)]);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);

    // The audit trail keeps why the drill's cleanup ran early (the worker audits as events come).
    const audit = new AuditLog(s.conn, s.prefix);
    const line = await until(
      "the audit entry of the drill's cleanup",
      async () => {
        for await (const e of audit.entries()) {
          const d = e.data as { opId?: string; job?: string } | undefined;
          if (e.type === 'result' && d?.opId === drill.opId && d.job === 'cleanup')
            return auditLine(e);
        }
        return undefined;
      },
      120_000,
    );
    expect(line).toContain(`cleanup web ${drill.opId}: succeeded (ended before ${opId} launched)`);
  }, 240_000);

  it('a failover inside a plan run ends the kept drill server too, and the plan’s message says so', async () => {
    await setUp();
    const drill = await keptDrill();
    await mkdir(join(s.t.home, 'plans'));
    await writeFile(join(s.t.home, 'plans', 'solo.yaml'), 'groups:\n  - apps: [web]\n');

    const f = await dr(['failover', 'solo', '--wait'], s.env);
    expect(f.err).toBe('');
    expect(f.code).toBe(0);
    expect(f.out).toContain(`web: ended drill server of ${drill.opId} first`);
    expect(await s.client.queue.getJob(`${drill.opId}-cleanup`)).toBeUndefined();
    expect(await exists(join(s.t.home, 'recovery', drill.opId))).toBe(false);
    expect(await volumeServerPids(s.t.dir)).toHaveLength(1);
  }, 240_000);

  it('a new drill of the app ends the kept one first, and is checked on its own server', async () => {
    const port = await setUp();
    const first = await keptDrill();
    const firstPid = Number(first.server.details.pid);
    const second = await keptDrill();
    expect(second.drills).toEqual([expect.objectContaining({ opId: first.opId, ended: true })]);
    expect(pidAlive(firstPid)).toBe(false);
    expect(await s.client.queue.getJob(`${first.opId}-cleanup`)).toBeUndefined();
    expect(await exists(join(s.t.home, 'recovery', first.opId))).toBe(false);
    expect(await volumeServerPids(s.t.dir)).toEqual([Number(second.server.details.pid)]);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    const events = await operationEvents(s.conn, s.client).events(second.opId);
    const steps = events.map((e) => e.step);
    expect(steps.indexOf('drill-ended')).toBeGreaterThanOrEqual(0);
    expect(steps.indexOf('launch')).toBeGreaterThan(steps.indexOf('drill-ended'));
  }, 240_000);

  it('goes on when a drill server cannot be ended, says how to remove it, and is not healthy through it', async () => {
    await setUp();
    const drill = await keptDrill();
    const drillPid = Number(drill.server.details.pid);
    // Its record unreadable: the drill's cleanup cannot find its server, which keeps the port.
    await writeFile(join(s.t.home, 'recovery', drill.opId, 'server.json'), 'not json\n');

    const f = await dr(['failover', 'web', '--wait', '--json'], s.env);
    expect(f.code).toBe(1);
    const body = JSON.parse(f.out) as { opId: string; error: { code: string; message: string } };
    const first = body.error.message.split('\n')[0] ?? '';
    expect(first).toContain(`drill server ${drill.opId} is still running (ending it failed:`);
    expect(first).toContain(`server.json is unreadable`);
    expect(first).toContain(`remove it with \`dr cleanup ${drill.opId}\``);
    // Its own server could not bind the drill's port: the failover failed, never healthy.
    expect(body.error.code).toBe('health_failed');
    const events = await operationEvents(s.conn, s.client).events(body.opId);
    const steps = events.map((e) => e.step);
    expect(steps).toContain('drill-not-ended');
    expect(steps).toContain('launched');
    expect(steps).not.toContain('healthy');
    expect(events.find((e) => e.step === 'drill-not-ended')?.detail).toContain(
      `dr cleanup ${drill.opId}`,
    );

    // The drill server still runs, alone, and its delayed cleanup is left to try again.
    expect(pidAlive(drillPid)).toBe(true);
    expect(await volumeServerPids(s.t.dir)).toEqual([drillPid]);
    expect(await (await s.client.queue.getJob(`${drill.opId}-cleanup`))?.getState()).toBe(
      'delayed',
    );
  }, 240_000);
});
