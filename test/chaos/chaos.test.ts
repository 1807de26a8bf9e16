import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { loopProblem } from '../helpers/loop-device.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { formatReport } from './chaos-report.js';
import { FAULT_KINDS } from './fault-schedule.js';
import { sqliteMissing } from './point-checks.js';
import { formatRoundTrip } from './round-trip-report.js';
import { runChaos } from './run-chaos.js';
import { runRoundTrip } from './run-round-trip.js';

let noLoop: string | undefined;
beforeAll(async () => {
  noLoop = await loopProblem();
});

describe('under fire (short chaos run; `npm run chaos` runs the long one)', () => {
  it('survives one fault of every kind with every point restorable, nothing lost and nothing leaked', {
    timeout: 900_000,
  }, async (ctx: TestContext) => {
    const why = noLoop ?? redisUnavailable();
    if (why) skipBecause(ctx, why);
    const report = await shortRun('loop');
    expect(Object.keys(report.faults).sort()).toEqual([...FAULT_KINDS].sort());
    // A restarted agent resynced by comparing with the gateway, not by sending everything again.
    expect(report.resyncs['tracker started']).toBeGreaterThanOrEqual(2);
    expect(report.bytesResent).toBeLessThanOrEqual(2 * report.bytesChanged);
  });

  it('runs on raw image files where loop devices are missing (scan tracker, quiesce hooks)', {
    timeout: 900_000,
  }, async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    const kinds = FAULT_KINDS.filter((k) => ['agent-kill', 'writer-restart'].includes(k));
    const report = await shortRun('image', kinds);
    expect(Object.keys(report.faults).sort()).toEqual([...kinds].sort());
  });
});

describe('the round trip under fire (short; `npm run chaos -- --round-trip` runs the long one)', () => {
  it('fails over, writes at the DR site, fails back and reprotects through a DR server kill, a Redis restart and a worker kill, losing no record', {
    timeout: 900_000,
  }, async (ctx: TestContext) => {
    const why = noLoop ?? redisUnavailable() ?? sqliteMissing();
    if (why) skipBecause(ctx, why);
    const lines: string[] = [];
    // Seed 251 draws: dr-server-kill during failback, redis-restart during failover, worker-kill during failback.
    const report = await runRoundTrip({
      rounds: 3,
      seed: 251,
      rate: 10,
      volumeMiB: 64,
      say: (l) => lines.push(l),
    });
    if (report.failures.length)
      process.stderr.write(`${lines.join('\n')}\n${formatRoundTrip(report)}`);
    expect(report.failures).toEqual([]);
    expect(report.faults).toEqual({ 'dr-server-kill': 1, 'redis-restart': 1, 'worker-kill': 1 });
    expect(report.recordsLost).toBe(0);
    expect(report.recordsAtDr).toBeGreaterThan(0);
    expect(report.recordsAtSource).toBeGreaterThan(0);
    expect(report.bytesResent).toBeLessThanOrEqual(2 * report.bytesChanged);
    // The database written all along: opened intact from each failover's point, each point
    // after a failback, and the source volume at the end; no acknowledged row lost.
    expect(report.sqliteChecks).toBe(2 * 3 + 1);
    expect(report.rowsAtDr).toBeGreaterThan(0);
    expect(report.rowsLost).toBe(0);
  });
});

async function shortRun(volumes: 'loop' | 'image', kinds = [...FAULT_KINDS]) {
  const lines: string[] = [];
  const report = await runChaos({
    rounds: kinds.length, // the schedule brings every kind once before any repeats
    seed: 20261129,
    kinds,
    volumes,
    volumeMiB: 64,
    storeMiB: 512,
    samplePerRound: 0,
    recoverMs: 60_000,
    say: (l) => lines.push(l),
  });
  if (report.failures.length) process.stderr.write(`${lines.join('\n')}\n${formatReport(report)}`);
  expect(report.failures).toEqual([]);
  expect(report.pointsChecked).toBeGreaterThan(kinds.length); // one per round and the last
  expect(report.records[0]).toBeGreaterThan(0);
  return report;
}
