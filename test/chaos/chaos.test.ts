import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { loopProblem } from '../helpers/loop-device.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { formatReport } from './chaos-report.js';
import { FAULT_KINDS } from './fault-schedule.js';
import { runChaos } from './run-chaos.js';

let problem: string | undefined;
beforeAll(async () => {
  problem = (await loopProblem()) ?? redisUnavailable();
});

describe('under fire (short chaos run; `npm run chaos` runs the long one)', () => {
  it('survives one fault of every kind with every point restorable, nothing lost and nothing leaked', {
    timeout: 300_000,
  }, async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    const lines: string[] = [];
    const report = await runChaos({
      rounds: FAULT_KINDS.length, // the schedule brings every kind once before any repeats
      seed: 20261129,
      volumeMiB: 64,
      storeMiB: 512,
      samplePerRound: 0,
      recoverMs: 60_000,
      say: (l) => lines.push(l),
    });
    const table = formatReport(report);
    if (report.failures.length) process.stderr.write(`${lines.join('\n')}\n${table}`);
    expect(report.failures).toEqual([]);
    expect(Object.keys(report.faults).sort()).toEqual([...FAULT_KINDS].sort());
    // A restarted agent resynced by comparing with the gateway, not by sending everything again.
    expect(report.resyncs['tracker started']).toBeGreaterThanOrEqual(2);
    expect(report.bytesResent).toBeLessThanOrEqual(2 * report.bytesChanged);
    expect(report.pointsChecked).toBeGreaterThan(FAULT_KINDS.length); // one per round and the last
    expect(report.records[0]).toBeGreaterThan(0);
  });
});
