import type { Processor } from 'bullmq';
import { APP_NAME } from '../../core/config.js';
import { isName } from '../../core/names.js';
import { trustedPoint } from '../recovery/point-check.js';
import { parallelismOf } from '../recovery/read-parallelism.js';
import { verifyPoint } from '../recovery/verify-point.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import { errorInfo, FinalError } from './job-errors.js';
import { JobScaffold } from './job-scaffold.js';
import { latestConsistent } from './latest-consistent.js';
import { OP_ID, type VerifyJob, type VerifyResult } from './recovery-contract.js';
import type { RecoveryDeps } from './recovery-deps.js';

/** Problems listed in a result; the count says how many there were in all. */
const MAX_PROBLEMS = 100;

/**
 * The `verify` job, `dr verify` on a worker: every block of the point (the latest consistent
 * one by default) is fetched, authenticated, decrypted and checked against its keyed MAC, and
 * each volume against its committed digest. Damage is a result (`ok: false`), not a failure;
 * it reads the gateway only, so it takes no app lock and runs beside drills and replication.
 */
export function runVerify(deps: RecoveryDeps): Processor<VerifyJob, VerifyResult> {
  return async (job, _token, bullSignal) => {
    const { opId, app } = job.data;
    const { point } = job.data;
    if (
      !OP_ID.test(opId) ||
      !APP_NAME.test(app) ||
      (point !== undefined && (typeof point !== 'number' || !isName('point', point)))
    ) {
      throw new FinalError(
        `job ${job.id} is not a valid operation (op id, app name or point id)`,
        'usage',
      );
    }
    const run = new JobScaffold(deps, job, 'verify', bullSignal);
    const { log, signal, emit } = run;
    await emit({ type: 'started' });
    run.watchCancel();
    let client: GatewayClient | undefined;
    try {
      const t0 = performance.now();
      const config = await deps.config();
      client = deps.gateway(config);
      const kek = await deps.kek(config);
      const id = job.data.point ?? (await latestConsistent(client, app));
      const point = await trustedPoint(client, kek, app, id);
      await emit({ type: 'step', step: 'resolved', progress: 1 });
      const volumes = Object.keys(point.volumes);
      let lastEmitted = 0;
      const report = await verifyPoint({
        client,
        kek,
        app,
        point,
        parallel: parallelismOf(config.recovery),
        onProgress: (volume, done, total) => {
          signal.throwIfAborted();
          const i = volumes.indexOf(volume);
          const fraction = (i + (total ? done / total : 1)) / Math.max(1, volumes.length);
          if (fraction - lastEmitted >= 0.05) {
            lastEmitted = fraction;
            void emit({ type: 'step', step: 'verify', progress: Math.min(1, fraction) });
          }
        },
      });
      signal.throwIfAborted();
      const result: VerifyResult = {
        opId,
        app,
        mode: 'verify',
        point: point.id,
        ok: report.ok,
        volumes: report.volumes.map(({ volume, blocks, digestOk }) => ({
          volume,
          blocks,
          digestOk,
        })),
        problems: report.problems.slice(0, MAX_PROBLEMS),
        problemCount: report.problems.length,
        ms: Math.round(performance.now() - t0),
      };
      await emit({ type: 'step', step: 'verified', progress: 1 });
      log.info(
        { point: result.point, ok: result.ok, problems: result.problemCount },
        'verify done',
      );
      await emit({ type: 'finished', result });
      await deps.redis.del(deps.keys.cancel(opId));
      return result;
    } catch (err) {
      const { why, final } = await run.failure(err);
      if (!final) throw err;
      const info = errorInfo(why);
      await emit({ type: 'finished', error: info });
      await deps.redis.del(deps.keys.cancel(opId)).catch(() => 0); // the flag expires by itself
      throw new FinalError(info.message, info.code);
    } finally {
      run.stop();
      client?.close();
    }
  };
}
