// The long chaos run behind `npm run chaos` (scripts/chaos.mjs passes the
// options in CHAOS_* variables). Not named *.test.ts: `npm test` runs the
// short version in chaos.test.ts instead.
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { cephUnavailable } from '../helpers/ceph-s3.js';
import { loopProblem } from '../helpers/loop-device.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { formatReport } from './chaos-report.js';
import { FAULT_KINDS, type FaultKind, OBJECT_STORE_FAULTS } from './fault-schedule.js';
import { sqliteMissing } from './point-checks.js';
import { formatRoundTrip } from './round-trip-report.js';
import { runChaos } from './run-chaos.js';
import { runRoundTrip } from './run-round-trip.js';

const env = process.env;
const rounds = Number(env.CHAOS_ROUNDS ?? 10);
const seed = Number(env.CHAOS_SEED ?? 1);
const store = env.CHAOS_STORE === 's3' ? ('s3' as const) : undefined;
const kinds = env.CHAOS_KINDS
  ? (env.CHAOS_KINDS.split(',') as FaultKind[])
  : [...FAULT_KINDS, ...(store ? OBJECT_STORE_FAULTS : [])];

let problem: string | undefined;
let volumes: 'loop' | 'image' = 'loop';
beforeAll(async () => {
  const noLoop = await loopProblem();
  const asked = env.CHAOS_VOLUMES ?? 'auto';
  volumes = asked === 'auto' ? (noLoop ? 'image' : 'loop') : (asked as 'loop' | 'image');
  if (noLoop && volumes === 'image' && asked === 'auto')
    process.stderr.write(`chaos: ${noLoop}; using image files instead of loop devices\n`);
  problem =
    (volumes === 'loop' ? noLoop : undefined) ??
    redisUnavailable() ??
    (store ? cephUnavailable() : undefined);
});

describe('chaos run', () => {
  it.runIf(env.CHAOS_ROUND_TRIP === '1')(
    `${rounds} round trips under fire, seed ${seed}`,
    { timeout: 0 },
    async (ctx: TestContext) => {
      // The round trip needs ext4 on loop devices: fencing unmounts, failback checks mounts.
      const why = (await loopProblem()) ?? redisUnavailable() ?? sqliteMissing();
      if (why) skipBecause(ctx, why);
      const report = await runRoundTrip({
        rounds,
        seed,
        ...(env.CHAOS_VOLUME_MIB ? { volumeMiB: Number(env.CHAOS_VOLUME_MIB) } : {}),
        ...(env.CHAOS_RATE ? { rate: Number(env.CHAOS_RATE) } : {}),
        say: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`\n${formatRoundTrip(report)}`);
      if (env.CHAOS_JSON) process.stdout.write(`${JSON.stringify(report)}\n`);
      expect(report.failures).toEqual([]);
      expect(report.recordsLost).toBe(0);
    },
  );

  it.runIf(env.CHAOS_ROUND_TRIP !== '1')(
    `${rounds} rounds of faults, seed ${seed}`,
    { timeout: 0 },
    async (ctx: TestContext) => {
      if (problem) skipBecause(ctx, problem);
      const report = await runChaos({
        rounds,
        seed,
        kinds,
        volumes,
        ...(store ? { store } : {}),
        ...(env.CHAOS_VOLUME_MIB ? { volumeMiB: Number(env.CHAOS_VOLUME_MIB) } : {}),
        ...(env.CHAOS_RATE ? { rate: Number(env.CHAOS_RATE) } : {}),
        ...(env.CHAOS_SAMPLE
          ? {
              samplePerRound:
                env.CHAOS_SAMPLE === 'all' ? Number.POSITIVE_INFINITY : Number(env.CHAOS_SAMPLE),
            }
          : {}),
        say: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`\n${formatReport(report)}`);
      if (env.CHAOS_JSON) process.stdout.write(`${JSON.stringify(report)}\n`);
      expect(report.failures).toEqual([]);
    },
  );
});
