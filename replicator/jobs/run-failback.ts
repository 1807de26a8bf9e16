import type { Processor } from 'bullmq';
import { APP_NAME } from '../../core/config.js';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Provider } from '../providers/provider.js';
import { copyBack } from '../recovery/copy-back.js';
import { unfenceSource } from '../recovery/fence-source.js';
import { assertUnused } from '../recovery/original-holders.js';
import { prepareOriginal } from '../recovery/prepare-original.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { AppLock } from './app-lock.js';
import { awaitReprotect, lastPointId } from './await-reprotect.js';
import { findFailover, volumeMacKeys } from './find-failover.js';
import { errorInfo, FinalError } from './job-errors.js';
import { JobScaffold, recordedSteps } from './job-scaffold.js';
import {
  type FailbackJobData,
  type FailbackResult,
  type FailbackSteps,
  type FailbackTransfer,
  OP_ID,
  type OperationEvent,
} from './recovery-contract.js';
import { defaultProvider, type RecoveryDeps, workerApp } from './recovery-deps.js';
import { removeOperation } from './run-cleanup.js';
import { wayHomeFailback } from './way-home-failback.js';

/**
 * Failback: copy the failed-over server's volumes back onto the original volumes, sending only
 * blocks whose keyed MAC differs, while the recovered server runs; freeze it (its freeze hook,
 * fsfreeze of its file systems), copy what changed meanwhile, then stop it (killed while still
 * frozen, so it acknowledges nothing the originals lack); a server with nothing to freeze is
 * stopped before the final copy instead. Then lift the gateway's failed-over mark so the agent
 * replicates again (its scan finds the blocks written here and resyncs only those); remove the
 * failover's server and images. Each step is recorded in job data, so a killed worker's retry resumes after it.
 *
 * "The original site" is the app's volume paths in the worker's dr.yaml: the worker must reach
 * them (local provider). A failback that fails after the freeze thaws the recovered server (or
 * starts it again when it was stopped), so the app stays up at the DR site.
 */
export function runFailback(deps: RecoveryDeps): Processor<FailbackJobData, FailbackResult> {
  return async (job, _token, bullSignal) => {
    const { opId, app } = job.data;
    if (!OP_ID.test(opId) || !APP_NAME.test(app)) {
      throw new FinalError(`job ${job.id} is not a valid operation (op id or app name)`, 'usage');
    }
    const run = new JobScaffold(deps, job, 'failback', bullSignal);
    const { log, signal, emit } = run;
    const { steps, resumed, save } = await recordedSteps<FailbackSteps, FailbackJobData>(job);
    await emit({ type: 'started', ...(resumed ? { step: 'resumed' } : {}) });

    let client: GatewayClient | undefined;
    let provider: Provider | undefined;
    let lock: AppLock | undefined;
    const finish = async (e: Pick<OperationEvent, 'result' | 'error'>) => {
      run.stop();
      await deps.redis.del(deps.keys.cancel(opId)).catch(() => 0); // it expires by itself
      await run.finish(lock, e);
    };
    /** Cancelling is honoured until the freeze; after it the failback runs to its end. */
    const notFrozen = () => !steps.frozen;
    const checkCancel = () => run.checkCancel(notFrozen);
    try {
      lock = await run.takeLock();
      run.watchCancel(notFrozen);

      const config = await deps.config();
      const appConfig = workerApp(config, app);
      provider = (deps.provider ?? defaultProvider)(config, appConfig, log);
      if (provider.wayHome) {
        const wayHome = provider.wayHome;
        client = deps.gateway(config);
        const result = await wayHomeFailback({
          deps,
          config,
          appConfig,
          provider: Object.assign(provider, { wayHome }),
          client,
          kek: await deps.kek(config),
          opId,
          app,
          steps,
          save,
          emit,
          checkCancel,
          signal,
          log,
        });
        log.info(
          { bytesSent: result.bytesSent, size: result.size, protection: result.protection.detail },
          'failback home from the recovered server done',
        );
        await finish({ result });
        return result;
      }
      if (!provider.stop) {
        throw new DrError(
          `failback of ${provider.kind} apps is not supported: the worker cannot reach the original site's disks`,
          {
            code: 'not_implemented',
            subject: app,
            remedy:
              'protect the recovered server as a new app (its own agent) and fail that over to the original site',
          },
        );
      }
      client = deps.gateway(config);
      const kek = await deps.kek(config);

      if (!steps.found) {
        steps.found = await findFailover(deps, client, app, appConfig);
        await save();
      }
      const found = steps.found;
      await emit({ type: 'step', step: 'found', progress: 1 });
      const macKeys = await volumeMacKeys(client, kek, app, found.volumes);

      /** The pre-copy stops on a cancel; the final pass, after the freeze, does not. */
      const pass = async (name: 'precopy' | 'sync', durable: boolean) => {
        const t0 = performance.now();
        const transfers: FailbackTransfer[] = [];
        for (const v of found.volumes) {
          if (name === 'precopy') await checkCancel();
          const key = macKeys.get(v.name) as { mac: Buffer; blockSize: number };
          // Never under a live user: a mounted file system or a running app would be corrupted.
          await assertUnused(v.name, v.original, appConfig.fence !== undefined);
          await prepareOriginal(v);
          const r = await copyBack({
            volume: v.name,
            from: v.image,
            to: v.original,
            size: v.size,
            blockSize: key.blockSize,
            macKey: key.mac,
            durable,
            ...(name === 'precopy' ? { signal } : {}),
            onProgress: (d, t) => {
              if (d === t || d % 2048 === 0)
                void emit({ type: 'step', step: name, progress: d / t });
            },
          });
          transfers.push({ name: v.name, size: v.size, ...r });
        }
        return { transfers, ms: Math.round(performance.now() - t0) };
      };

      if (!steps.precopied && !steps.frozen) {
        steps.precopied = await pass('precopy', false);
        await save();
        log.info({ transfers: steps.precopied.transfers }, 'pre-copy done');
      }
      await emit({ type: 'step', step: 'precopied', progress: 1 });

      if (!steps.frozen) {
        await checkCancel();
        // Frozen, not stopped: the server keeps its state until the final copy is done. One
        // with nothing to freeze (no hook, no file system of its images mounted) is stopped.
        const frozen = await provider.freeze?.(found.failoverOpId, log);
        if (!frozen) await provider.stop(found.failoverOpId, log);
        steps.frozen = frozen
          ? { at: Date.now(), how: 'frozen', hook: frozen.hook, mounts: frozen.mounts }
          : { at: Date.now(), how: 'stopped' };
        await save();
      }
      await emit({ type: 'step', step: 'frozen', progress: 1 });

      if (!steps.synced) {
        steps.synced = await pass('sync', true);
        await save();
      }
      await emit({ type: 'step', step: 'synced', progress: 1 });

      if (!steps.stopped) {
        // Killed while still frozen: nothing it does after the freeze is acknowledged to anyone.
        if (steps.frozen.how === 'frozen') await provider.stop(found.failoverOpId, log);
        steps.stopped = { at: Date.now() };
        await save();
      }
      if (steps.frozen.how === 'frozen') await emit({ type: 'step', step: 'stopped', progress: 1 });

      if (!steps.unfenced) {
        // The originals hold everything: the source comes back into service before its agent
        // resumes (it may need the file system mounted to freeze it).
        steps.unfenced = await unfenceSource(app, opId, appConfig, log);
        await save();
      }
      await emit({
        type: 'step',
        step: steps.unfenced.ran ? 'unfenced' : 'no-unfence',
        progress: 1,
      });

      if (!steps.switched) {
        const lastPoint = await lastPointId(client, app);
        await client.setProtection(app, { state: 'protected' });
        steps.switched = { at: Date.now(), lastPoint };
        await save();
      }
      await emit({ type: 'step', step: 'switched', progress: 1 });
      const removed = await removeOperation(deps, found.failoverOpId, app, log).catch(
        (err: unknown) => {
          log.warn({ err: errorMessage(err) }, 'the failover server was not removed');
          return [] as string[];
        },
      );

      const volumes = found.volumes.map((v): FailbackTransfer => {
        const a = steps.precopied?.transfers.find((x) => x.name === v.name);
        const b = steps.synced?.transfers.find((x) => x.name === v.name);
        return {
          name: v.name,
          size: v.size,
          blocks: b?.blocks ?? a?.blocks ?? 0,
          blocksSent: (a?.blocksSent ?? 0) + (b?.blocksSent ?? 0),
          bytesSent: (a?.bytesSent ?? 0) + (b?.bytesSent ?? 0),
        };
      });
      // Reprotect: the agent standing by resumes by itself; its first point says we are safe again.
      await emit({ type: 'step', step: 'reprotect', progress: 0 });
      const protection = await awaitReprotect({
        client,
        app,
        after: steps.switched.lastPoint ?? 0,
        waitMs: config.recovery.reprotectWait,
        blocksWritten: volumes.reduce((n, v) => n + v.blocksSent, 0),
        signal,
      });
      await emit({
        type: 'step',
        step: protection.protected ? 'protected' : 'not-protected',
        progress: 1,
      });
      const result: FailbackResult = {
        opId,
        app,
        mode: 'failback',
        failoverOpId: found.failoverOpId,
        volumes,
        bytesSent: volumes.reduce((n, v) => n + v.bytesSent, 0),
        size: volumes.reduce((n, v) => n + v.size, 0),
        precopyMs: steps.precopied?.ms ?? 0,
        downtimeMs: steps.switched.at - steps.frozen.at,
        totalMs: Date.now() - steps.startedAt,
        resumes: steps.resumes ?? 0,
        removed,
        unfenced: steps.unfenced.ran,
        quiesce:
          steps.frozen.how === 'frozen'
            ? { how: 'frozen', hook: steps.frozen.hook ?? false, mounts: steps.frozen.mounts ?? [] }
            : { how: 'stopped', hook: false, mounts: [] },
        protection,
      };
      log.info(
        { bytesSent: result.bytesSent, size: result.size, protection: protection.detail },
        'failback done',
      );
      await finish({ result });
      return result;
    } catch (err) {
      if (err instanceof FinalError && err.code === 'operation_conflict') throw err;
      const { why, final } = await run.failure(err);
      if (!final) {
        log.warn(
          { err: errorMessage(err), attempt: job.attemptsMade + 1 },
          'failback will be retried',
        );
        throw err;
      }
      const info = errorInfo(why);
      const frozenOnly = steps.frozen?.how === 'frozen' && !steps.stopped;
      if (frozenOnly && steps.found) {
        // Frozen for the final copy but not stopped: thawed, it runs on where it was.
        const thawed = await provider
          ?.thaw?.(steps.found.failoverOpId, log)
          .then(() => true)
          .catch((e: unknown) => {
            log.error({ err: errorMessage(e) }, 'the recovered server could not be thawed');
            return false;
          });
        info.message += thawed
          ? `; the recovered server ${steps.found.failoverOpId} was thawed and runs on`
          : `; the recovered server ${steps.found.failoverOpId} could not be thawed: thaw it by hand (fsfreeze -u on its mounts)`;
      } else if (steps.frozen && !steps.switched && steps.found) {
        // The recovered server was stopped for the final cut: start it again, the app stays up.
        const restarted = await restartRecovered(provider, app, steps.found, log);
        info.message += restarted
          ? `; the recovered server ${steps.found.failoverOpId} was started again`
          : `; the recovered server ${steps.found.failoverOpId} could not be started again: start it by hand`;
      }
      log.warn({ err: info.message }, 'failback failed');
      await finish({ error: info });
      throw new FinalError(info.message, info.code);
    } finally {
      run.stop();
      client?.close();
    }
  };
}

async function restartRecovered(
  provider: Provider | undefined,
  app: string,
  found: NonNullable<FailbackSteps['found']>,
  log: Logger,
): Promise<boolean> {
  if (!provider) return false;
  try {
    if (provider.wayHome) {
      await provider.wayHome.restart(found.failoverOpId, log);
      return true;
    }
    await provider.launch({
      opId: found.failoverOpId,
      app,
      mode: 'failover',
      volumes: found.volumes.map((v) => ({ name: v.name, path: v.image, size: v.size })),
      signal: new AbortController().signal,
      log,
    });
    return true;
  } catch (err) {
    log.error({ err: errorMessage(err) }, 'the recovered server could not be started again');
    return false;
  }
}
