/** Failback from a server the worker cannot read (ECS): reverse replication, then the final cut home. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig, LoadedConfig } from '../../core/config.js';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { APP_NAME, reverseAppId } from '../../core/names.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { Provider, WayHome, WayHomeRequest } from '../providers/provider.js';
import { copyBack } from '../recovery/copy-back.js';
import { unfenceSource } from '../recovery/fence-source.js';
import { materialisePoint } from '../recovery/materialise-point.js';
import { assertUnused } from '../recovery/original-holders.js';
import { trustedPoint } from '../recovery/point-check.js';
import { prepareOriginal } from '../recovery/prepare-original.js';
import { parallelismOf } from '../recovery/read-parallelism.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import { awaitReprotect, lastPointId } from './await-reprotect.js';
import { findFailover, volumeMacKeys } from './find-failover.js';
import type {
  FailbackResult,
  FailbackSteps,
  FailbackTransfer,
  OperationEvent,
} from './recovery-contract.js';
import { type RecoveryDeps, recoveryDir } from './recovery-deps.js';
import { removeOperation } from './run-cleanup.js';

/** How long the way home's first copy (the whole disks, over the WAN) may take. */
const FIRST_COPY_WAIT_MS = 6 * 3600_000;

export interface WayHomeContext {
  deps: RecoveryDeps;
  config: LoadedConfig;
  appConfig: AppConfig;
  provider: Provider & { wayHome: WayHome };
  client: GatewayClient;
  kek: KeyEncryptionKey;
  opId: string;
  app: string;
  steps: FailbackSteps;
  save: () => Promise<void>;
  emit: (e: Pick<OperationEvent, 'type' | 'step' | 'progress'>) => Promise<unknown>;
  checkCancel: () => Promise<void>;
  signal: AbortSignal;
  log: Logger;
}

/**
 * The way home: an agent started on the recovered server replicates the app back to this
 * gateway as `<app>--home`; once its first copy is in, the originals are pre-copied from it
 * while the server runs; then the app's fence runs on the server, the agent takes a last cut,
 * the server is stopped (StopInstance), and that last point is written to the originals (with
 * the same no-live-user checks as a local failback); the source's unfence runs and forward
 * protection resumes. Each step is recorded, so a retried job resumes after the last one.
 */
export async function wayHomeFailback(c: WayHomeContext): Promise<FailbackResult> {
  const { steps, save, emit, client, kek, app, opId, log, signal } = c;
  const home = reverseAppId(app);
  if (!APP_NAME.test(home)) {
    throw new DrError(`${app} is too long a name for its way home (${home})`, {
      code: 'usage',
      subject: app,
      remedy: 'app names of at most 57 characters can fail back from ECS',
    });
  }
  if (!steps.found) {
    steps.found = await findFailover(c.deps, client, app, c.appConfig);
    await save();
  }
  const found = steps.found;
  await emit({ type: 'step', step: 'found', progress: 1 });
  const req: WayHomeRequest = {
    failoverOpId: found.failoverOpId,
    server: found.server,
    app,
    volumes: found.volumes.map((v) => ({ name: v.name, size: v.size })),
    signal,
    log,
  };
  const wayHome = c.provider.wayHome;

  if (!steps.homeStarted) {
    await c.checkCancel();
    const after = await homePoint(client, home);
    const said = await wayHome.start(req).catch((err: unknown) => {
      throw new DrError(
        `the way home of ${app} could not start its agent on ${found.server.id}: ${bareMessage(err)}`,
        {
          code: 'way_home_failed',
          subject: found.server.id,
          remedy:
            "the instance needs `dr` and the source's DR_HOME (agentHome and agentCommand in the app's provider block); the app keeps running on ECS, run the failback again once they are there",
          cause: err,
        },
      );
    });
    steps.homeStarted = { at: Date.now(), after: after ?? 0, said };
    await save();
  }
  await emit({ type: 'step', step: 'way-home-started', progress: 1 });

  if (!steps.homeCopied) {
    const point = await firstCopy(c, home, steps.homeStarted.after, req);
    steps.homeCopied = { point };
    await save();
  }
  await emit({ type: 'step', step: 'way-home-continuous', progress: 1 });

  const macKeys = await volumeMacKeys(client, kek, app, found.volumes);
  /** Materialises a point of the way home and writes what differs onto the originals. */
  const pass = async (name: 'precopy' | 'sync', point: number, durable: boolean) => {
    const t0 = performance.now();
    const dir = join(recoveryDir(c.config), opId, `home-${point}`);
    try {
      const images = await materialisePoint({
        client,
        kek,
        app: home,
        point: await trustedPoint(client, kek, home, point),
        dir,
        parallel: parallelismOf(c.config.recovery),
        ...(name === 'precopy' ? { signal } : {}),
      });
      const transfers: FailbackTransfer[] = [];
      for (const v of found.volumes) {
        if (name === 'precopy') await c.checkCancel();
        const image = images.find((i) => i.name === v.name);
        const key = macKeys.get(v.name);
        if (!image || !key) {
          throw new DrError(`the way home of ${app} has no volume ${v.name} at point ${point}`, {
            code: 'store_corrupt',
            subject: `${home}@${point}`,
            remedy: `run the failback again: it starts the agent on the recovered server again`,
          });
        }
        // Never under a live user: a mounted file system or a running app would be corrupted.
        await assertUnused(v.name, v.original, c.appConfig.fence !== undefined);
        await prepareOriginal(v);
        const r = await copyBack({
          volume: v.name,
          from: image.path,
          to: v.original,
          size: v.size,
          blockSize: key.blockSize,
          macKey: key.mac,
          durable,
          ...(name === 'precopy' ? { signal } : {}),
          onProgress: (d, t) => {
            if (d === t || d % 2048 === 0) void emit({ type: 'step', step: name, progress: d / t });
          },
        });
        transfers.push({ name: v.name, size: v.size, ...r });
      }
      return { transfers, ms: Math.round(performance.now() - t0) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  if (!steps.precopied && !steps.frozen) {
    steps.precopied = await pass('precopy', steps.homeCopied.point, false);
    await save();
    log.info({ transfers: steps.precopied.transfers }, 'pre-copy from the way home done');
  }
  await emit({ type: 'step', step: 'precopied', progress: 1 });

  if (!steps.frozen) {
    await c.checkCancel();
    // The app on the server stops taking writes (its fence), the agent ships its last cut...
    await wayHome.finalCut({
      ...req,
      ...(c.appConfig.fence !== undefined ? { fence: c.appConfig.fence } : {}),
    });
    const point = await homePoint(client, home);
    if (point === undefined) {
      throw new DrError(`the way home of ${app} has no point after its last cut`, {
        code: 'provider_failed',
        subject: home,
        remedy: 'run the failback again',
      });
    }
    // ...and the server is stopped: nothing on it can write any more (the fence).
    await c.provider.stop?.(found.failoverOpId, log);
    steps.frozen = { at: Date.now(), how: 'stopped', point };
    await save();
  }
  await emit({ type: 'step', step: 'frozen', progress: 1 });

  if (!steps.synced) {
    steps.synced = await pass('sync', steps.frozen.point ?? steps.homeCopied.point, true);
    await save();
  }
  await emit({ type: 'step', step: 'synced', progress: 1 });

  if (!steps.unfenced) {
    steps.unfenced = await unfenceSource(app, opId, c.appConfig, log);
    await save();
  }
  await emit({ type: 'step', step: steps.unfenced.ran ? 'unfenced' : 'no-unfence', progress: 1 });

  if (!steps.switched) {
    const lastPoint = await lastPointId(client, app);
    await client.setProtection(app, { state: 'protected' });
    steps.switched = { at: Date.now(), lastPoint };
    await save();
  }
  await emit({ type: 'step', step: 'switched', progress: 1 });
  const removed = await removeOperation(c.deps, found.failoverOpId, app, log).catch(
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
  await emit({ type: 'step', step: 'reprotect', progress: 0 });
  const protection = await awaitReprotect({
    client,
    app,
    after: steps.switched.lastPoint ?? 0,
    waitMs: c.config.recovery.reprotectWait,
    blocksWritten: volumes.reduce((n, v) => n + v.blocksSent, 0),
    signal,
  });
  await emit({
    type: 'step',
    step: protection.protected ? 'protected' : 'not-protected',
    progress: 1,
  });
  return {
    opId,
    app,
    mode: 'failback',
    failoverOpId: found.failoverOpId,
    volumes,
    bytesSent: volumes.reduce((n, v) => n + v.bytesSent, 0),
    size: volumes.reduce((n, v) => n + v.size, 0),
    precopyMs: steps.precopied?.ms ?? 0,
    downtimeMs: steps.switched.at - steps.frozen.at,
    totalMs: Date.now() - (steps.startedAt ?? Date.now()),
    resumes: steps.resumes ?? 0,
    removed,
    unfenced: steps.unfenced.ran,
    // The app was fenced on the instance and the instance stopped: nothing to thaw.
    quiesce: { how: 'stopped', hook: false, mounts: [] },
    protection,
    wayHome: { app: home, firstPoint: steps.homeCopied.point, lastPoint: steps.frozen.point ?? 0 },
  };
}

/** The newest point of the way home, if the gateway has any (it knows the app from its first session). */
async function homePoint(client: GatewayClient, home: string): Promise<number | undefined> {
  try {
    return (await client.points(home)).at(-1)?.id;
  } catch (err) {
    if ((err as { code?: string }).code === 'app_unknown') return undefined;
    throw err;
  }
}

/**
 * Waits, bounded, for the agent on the server to commit its first point after it started: the
 * whole volumes are then home and every later cut is a delta. If none comes, the agent's own
 * last log lines (through Cloud Assistant) say why.
 */
async function firstCopy(
  c: WayHomeContext,
  home: string,
  after: number,
  req: WayHomeRequest,
): Promise<number> {
  const started = Date.now();
  const until = started + FIRST_COPY_WAIT_MS;
  let connected = false;
  let pause = 500;
  for (;;) {
    c.signal.throwIfAborted();
    const point = await homePoint(c.client, home);
    if (point !== undefined && point > after) return point;
    connected ||= await agentSeen(c.client, home, c.steps.homeStarted?.at ?? started);
    if (!connected && Date.now() - started > c.config.recovery.wayHomeConnectWait) {
      // Most often the instance cannot reach the gateway (security group, route, address).
      const tail = await c.provider.wayHome
        .agentLog(req)
        .catch((err: unknown) => errorMessage(err));
      throw new DrError(
        `the agent on ${req.server.id} has not reached the gateway as ${home} in ${Math.round(c.config.recovery.wayHomeConnectWait / 1000)} s${tail ? `; its log ends: ${tail.split('\n').at(-1)}` : ''}`,
        {
          code: 'way_home_failed',
          subject: req.server.id,
          remedy: `let the instance reach the gateway (its security group and route, the gateway address in dr.yaml of its DR_HOME), then run the failback again; the app keeps running on ECS`,
        },
      );
    }
    if (Date.now() > until) {
      const tail = await c.provider.wayHome
        .agentLog(req)
        .catch((err: unknown) => errorMessage(err));
      throw new DrError(
        `the way home of ${c.app} committed no point within ${FIRST_COPY_WAIT_MS / 3600_000} h${tail ? `; its agent says: ${tail.split('\n').at(-1)}` : ''}`,
        {
          code: 'provider_failed',
          subject: home,
          remedy: `look at way-home-${c.app}.log in the DR_HOME on ${req.server.id}, then run the failback again`,
        },
      );
    }
    await c.checkCancel();
    await sleep(pause, undefined, { signal: c.signal });
    pause = Math.min(pause * 1.5, 5000);
  }
}

/** An error's message without the remedy DrError appends (the wrapping error gives its own). */
function bareMessage(err: unknown): string {
  const m = errorMessage(err);
  if (!isDrError(err) || !err.remedy) return m;
  const tail = `. To resolve, ${err.remedy}`;
  return m.endsWith(tail) ? m.slice(0, -tail.length) : m;
}

/** Whether an agent of the way home has talked to the gateway since `since` (its heartbeat). */
async function agentSeen(client: GatewayClient, home: string, since: number): Promise<boolean> {
  try {
    const [status] = await client.status(home);
    return (
      status?.agent !== null &&
      status?.agent !== undefined &&
      Date.parse(status.agent.lastSeen) >= since - 60_000
    );
  } catch (err) {
    if ((err as { code?: string }).code === 'app_unknown') return false;
    throw err;
  }
}
