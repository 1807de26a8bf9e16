/** Drill and failover: the job that brings a point up at the DR site, step by step, resumable. */
import { join } from 'node:path';
import { type Processor, UnrecoverableError } from 'bullmq';
import { APP_NAME } from '../../core/config.js';
import { DrError, errorMessage } from '../../core/errors.js';
import { isName } from '../../core/names.js';
import { fuseUnavailable } from '../recovery/fuse-mount.js';
import { heldInstant, serveInstant } from '../recovery/instant-point.js';
import { materialisePoint } from '../recovery/materialise-point.js';
import { trustedPoint } from '../recovery/point-check.js';
import { parallelismOf } from '../recovery/read-parallelism.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import type { AppLock } from './app-lock.js';
import { endKeptDrills, withDrillsNote } from './end-kept-drills.js';
import { fenceAfterStop, stopReplication } from './fence-for-failover.js';
import { errorInfo, FinalError, isJobLost, jobLost } from './job-errors.js';
import { JobScaffold, recordedSteps } from './job-scaffold.js';
import { latestConsistent } from './latest-consistent.js';
import { awaitHydration, progressThrottle } from './operation-progress.js';
import { preflightBoot } from './preflight-boot.js';
import { imagesPresent, lastStep } from './recorded-progress.js';
import {
  cleanupJobId,
  type JobName,
  OP_ID,
  type OperationEvent,
  type OperationResult,
  type RecordedSteps,
  type RecoveryJobData,
  type RecoveryKind,
} from './recovery-contract.js';
import {
  defaultProvider,
  imageCacheDir,
  type RecoveryDeps,
  recoveryDir,
  workerApp,
} from './recovery-deps.js';
import { removeOperation } from './run-cleanup.js';

const DEFAULT_KEEP_MS = 30 * 60_000;
type Mode = 'drill' | 'failover';

/**
 * Drill or failover: resolve the point, materialise it under DR_HOME/recovery/<opId>, launch it
 * through the app's provider, wait for its health check, report. Each step is recorded in job
 * data, so a retried job (a crash, a lost worker) resumes after the last one done. A drill
 * schedules its cleanup; a failed or cancelled operation cleans up at once.
 */
export function runOperation(mode: Mode, deps: RecoveryDeps): Processor<RecoveryJobData> {
  return async (job, _token, bullSignal) => {
    const { opId, app } = job.data;
    const { point } = job.data;
    if (
      !OP_ID.test(opId) ||
      !APP_NAME.test(app) ||
      (point !== undefined && (typeof point !== 'number' || !isName('point', point)))
    ) {
      throw new UnrecoverableError(
        `job ${job.id} is not a valid operation (op id, app name or point id)`,
      );
    }
    const name = job.name as JobName;
    const run = new JobScaffold(deps, job, name, bullSignal);
    const { log, signal, emit } = run;
    const { steps, resumed, save } = await recordedSteps<RecordedSteps, RecoveryJobData>(job);
    await emit({ type: 'started', ...(resumed ? { step: 'resumed' } : {}) });
    log.info({ resumed, after: lastStep(steps) }, `${mode} started`);

    let client: GatewayClient | undefined;
    let lock: AppLock | undefined;
    /** The end of the operation: the app is free again before anyone hears it finished. */
    const finish = (e: Pick<OperationEvent, 'result' | 'error'>) => run.finish(lock, e);
    const checkCancel = () => run.checkCancel();
    try {
      lock = await run.takeLock();
      run.watchCancel();

      const config = await deps.config();
      const appConfig = workerApp(config, app);
      const provider = (deps.provider ?? defaultProvider)(config, appConfig, log);
      client = deps.gateway(config);
      const kek = await deps.kek(config);
      const checkTimeout = appConfig.provider?.checkTimeout ?? 60_000;
      await checkCancel();

      let detail: PointDetail | undefined;
      const pointDetail = async (id: number) => {
        detail ??= await trustedPoint(client as GatewayClient, kek, app, id);
        return detail;
      };
      const dir = join(recoveryDir(config), opId);
      const useCache = deps.imageCache !== false && config.recovery.imageCache;
      if (mode === 'failover' && !steps.resolved && !steps.preflighted && provider.preflight) {
        // Before the failover changes anything: a point the target cannot serve (a system disk
        // that would not boot on ECS) is refused while the agent still replicates, unfenced.
        await emit({ type: 'step', step: 'preflight', progress: 0 });
        const candidate = await trustedPoint(
          client,
          kek,
          app,
          job.data.point ?? (await latestConsistent(client, app)),
        );
        const warnings = await preflightBoot({
          provider,
          client,
          kek,
          opId,
          app,
          point: candidate,
          dir,
          ...(useCache ? { cacheDir: imageCacheDir(config, app) } : {}),
          parallel: parallelismOf(config.recovery),
          signal,
          log,
        });
        steps.preflighted = { point: candidate.id, warnings };
        await save();
        await emit({ type: 'step', step: 'preflighted', progress: 1 });
      }
      if (mode === 'failover' && !steps.resolved) {
        // Stop replication into the replica before choosing the point: from
        // here the gateway refuses the agent, and the point set cannot move.
        await stopReplication(client, app, opId);
        await emit({ type: 'step', step: 'replication-stopped', progress: 1 });
      }
      // A plan fences all its sources first, last group first, and hands each failover its outcome.
      if (mode === 'failover' && !steps.fenced && job.data.fenced) {
        steps.fenced = job.data.fenced;
        await save();
      }
      if (mode === 'failover' && !steps.fenced) {
        // Before anything can start at the DR site. Never run twice, so a resume skips it.
        await emit({ type: 'step', step: 'fence', progress: 0 });
        steps.fenced = await fenceAfterStop(app, opId, appConfig, log, signal);
        await save();
      }
      if (steps.fenced) {
        await emit({
          type: 'step',
          step: steps.fenced.fenced ? 'fenced' : 'not-fenced',
          progress: 1,
        });
      }
      if ((mode === 'failover' || mode === 'drill') && !steps.drills) {
        // The app's kept drill servers go before anything launches: two copies never run at once
        // (a new drill replaces a kept one, as a failover does).
        steps.drills = await endKeptDrills(deps, { app, opId, provider, log, emit });
        await save();
      }
      if (!steps.resolved) {
        const id = job.data.point ?? (await latestConsistent(client, app));
        const p = await pointDetail(id);
        steps.resolved = {
          point: p.id,
          pointTime: p.time,
          label: p.label,
          dataAgeSeconds: Math.max(0, Math.round((steps.startedAt - Date.parse(p.time)) / 1000)),
        };
        await save();
      }
      const resolved = steps.resolved;
      await emit({ type: 'step', step: 'resolved', progress: 1 });

      // Served on demand by a worker that is gone (killed, restarted): serve it again here.
      const lostInstant = steps.materialised?.instant === true && !heldInstant(opId);
      let fullBecause: string | undefined;
      if (
        !steps.materialised ||
        lostInstant ||
        !(await imagesPresent(steps.materialised.volumes))
      ) {
        await checkCancel();
        const wantInstant =
          provider.kind === 'local' &&
          deps.instant !== false &&
          (config.recovery.instant ?? mode === 'drill');
        fullBecause = wantInstant ? await fuseUnavailable() : undefined;
        if (wantInstant && fullBecause === undefined) {
          await emit({ type: 'step', step: 'materialise', progress: 0 });
          const t0 = performance.now();
          const served = await serveInstant(opId, {
            client: deps.gateway(config),
            kek,
            app,
            point: await pointDetail(resolved.point),
            dir,
            log,
            parallel: parallelismOf(config.recovery),
          });
          steps.materialised = {
            volumes: served.volumes,
            ms: Math.round(performance.now() - t0),
            instant: true,
          };
          delete steps.launched;
          delete steps.healthy;
          await save();
        } else if (fullBecause !== undefined) {
          log.warn({ why: fullBecause }, 'volumes cannot be served on demand; materialising them');
        }
      }
      if (!steps.materialised || !(await imagesPresent(steps.materialised.volumes))) {
        await checkCancel();
        await emit({ type: 'step', step: 'materialise', progress: 0 });
        const t0 = performance.now();
        const throttle = progressThrottle((fraction) =>
          emit({ type: 'step', step: 'materialise', progress: fraction }),
        );
        const volumes = await materialisePoint({
          client,
          kek,
          app,
          point: await pointDetail(resolved.point),
          dir,
          signal,
          onProgress: (volume, fraction) => throttle(volume, fraction),
          parallel: parallelismOf(config.recovery),
          // A drill copies the cached images at low priority beside replication; a failover
          // takes them (no copy: the RTO counts), and the next operation rebuilds the cache.
          ...(!useCache
            ? {}
            : {
                cacheDir: imageCacheDir(config, app),
                handover: mode === 'drill' ? 'background-copy' : 'take',
              }),
        });
        steps.materialised = {
          volumes,
          ms: Math.round(performance.now() - t0),
          ...(fullBecause !== undefined ? { fullBecause } : {}),
        };
        delete steps.launched;
        delete steps.healthy;
        await save();
      }
      const materialised = steps.materialised;
      await emit({ type: 'step', step: 'materialised', progress: 1 });

      if (steps.launched && !steps.healthy) {
        // Picked up again after a launch: the server may still run (it outlives its worker).
        await checkCancel();
        const t0 = performance.now();
        const h = await provider.health(steps.launched.server, { timeoutMs: checkTimeout, signal });
        if (h.ok) {
          steps.healthy = { output: h.output, ms: Math.round(performance.now() - t0) };
        } else {
          log.info({ output: h.output }, 'the earlier server is not healthy; launching again');
          delete steps.launched;
        }
        await save();
      }
      if (!steps.launched) {
        await checkCancel();
        await emit({ type: 'step', step: 'launch', progress: 0 });
        const t0 = performance.now();
        const server = await provider.launch({
          opId,
          app,
          mode,
          volumes: materialised.volumes,
          signal,
          log,
          onStep: (step, fraction) => void emit({ type: 'step', step, progress: fraction }),
        });
        steps.launched = { server, ms: Math.round(performance.now() - t0) };
        await save();
      }
      const launched = steps.launched;
      await emit({ type: 'step', step: 'launched', progress: 1 });

      if (!steps.healthy) {
        await checkCancel();
        await emit({ type: 'step', step: 'health', progress: 0 });
        const t0 = performance.now();
        const h = await provider.health(launched.server, { timeoutMs: checkTimeout, signal });
        signal.throwIfAborted();
        if (!h.ok) {
          throw new DrError(`the health check of ${app} failed: ${h.output}`, {
            code: 'health_failed',
            subject: app,
          });
        }
        steps.healthy = { output: h.output, ms: Math.round(performance.now() - t0) };
        await save();
      }
      const healthy = steps.healthy;
      await emit({ type: 'step', step: 'healthy', progress: 1 });
      const healthyAt = Date.now();
      const served = materialised.instant ? heldInstant(opId) : undefined;
      served?.startHydrating();
      const recovery: RecoveryKind = served
        ? { kind: 'instant', hydrated: served.fraction() }
        : {
            kind: 'full',
            ...(materialised.fullBecause !== undefined ? { why: materialised.fullBecause } : {}),
          };
      if (served && mode === 'failover') {
        // The failover is done when the recovery no longer needs the gateway: wait, showing progress.
        recovery.hydration = await awaitHydration(
          served,
          signal,
          (fraction) => emit({ type: 'step', step: 'hydrate', progress: fraction }),
          (step) => emit({ type: 'step', step, progress: 1 }),
        );
        recovery.hydrated = 1;
        await emit({ type: 'step', step: 'hydrated', progress: 1 });
      }

      const result: OperationResult = {
        opId,
        app,
        mode,
        point: resolved.point,
        dataAgeSeconds: resolved.dataAgeSeconds,
        rto: {
          materialiseMs: materialised.ms,
          launchMs: launched.ms,
          healthyMs: healthy.ms,
          totalMs: healthyAt - steps.startedAt,
        },
        health: { ok: true, output: healthy.output },
        server: launched.server,
        resumes: steps.resumes ?? 0,
        ...(steps.fenced ? { fence: steps.fenced } : {}),
        recovery,
        ...(steps.drills?.length ? { drills: steps.drills } : {}),
      };
      if (mode === 'drill') {
        const keepMs = job.data.keepMs ?? DEFAULT_KEEP_MS;
        await deps.queue.add(
          'cleanup',
          { opId, app, requestedBy: 'worker' },
          {
            jobId: cleanupJobId(opId),
            delay: keepMs,
            attempts: 5,
            backoff: { type: 'exponential', delay: 2000 },
            removeOnComplete: { age: 7 * 86_400 },
          },
        );
        result.cleanupAt = new Date(Date.now() + keepMs).toISOString();
      }
      log.info({ point: result.point, rto: result.rto }, `${mode} healthy`);
      await finish({ result });
      return result;
    } catch (err) {
      if (err instanceof FinalError && err.code === 'operation_conflict') throw err;
      if (isJobLost(err) && !run.wasCancelled) {
        // Nothing can retry or clean up this operation later: a drill is removed now; a
        // failover's server is production, so it is kept and the error says where it is.
        const keep = mode === 'failover' && steps.launched !== undefined;
        if (!keep) {
          await removeOperation(deps, opId, app, log).catch((cleanupErr: unknown) =>
            log.error({ err: errorMessage(cleanupErr) }, 'cleanup after a lost job failed'),
          );
        }
        const lost = jobLost(
          opId,
          keep
            ? `its server ${steps.launched?.server.id} keeps running, untracked (its images are under recovery/${opId})`
            : 'what it made was removed',
        );
        log.error({ err: lost.message }, `${mode} lost its job record`);
        await finish({ error: errorInfo(lost) });
        throw new FinalError(lost.message, lost.code);
      }
      const { why, final } = await run.failure(err);
      if (!final) {
        log.warn(
          { err: errorMessage(err), attempt: job.attemptsMade + 1 },
          `${mode} will be retried`,
        );
        throw err;
      }
      log.warn({ err: errorMessage(why) }, `${mode} failed; cleaning up`);
      await removeOperation(deps, opId, app, log).catch((cleanupErr: unknown) =>
        log.error({ err: errorMessage(cleanupErr) }, 'cleanup after failure failed'),
      );
      // A kept drill server the failover could not end still runs: its failure says how to remove it.
      const info = withDrillsNote(errorInfo(why), steps.drills);
      await finish({ error: info });
      throw new FinalError(info.message, info.code);
    } finally {
      run.stop();
      client?.close();
    }
  };
}
