import { createHash, randomUUID } from 'node:crypto';
import {
  AttachDiskRequest,
  CreateDiskRequest,
  CreateDiskRequestTag,
  CreateImageRequest,
  CreateImageRequestDiskDeviceMapping,
  CreateImageRequestTag,
  CreateSnapshotRequest,
  CreateSnapshotRequestTag,
  DetachDiskRequest,
  RunInstancesRequest,
  RunInstancesRequestDataDisk,
  RunInstancesRequestSystemDisk,
  RunInstancesRequestTag,
} from '@alicloud/ecs20140526';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { diskSizeGiB, essdLevel } from './alicloud-disk-size.js';
import { createEcsClient, ecsCall, make, type RetryPolicy } from './alicloud-ecs.js';
import { EcsResources, OP_TAG } from './alicloud-resources.js';
import { alicloudWayHome } from './alicloud-way-home.js';
import { bootGate } from './boot-gate.js';
import { findAttachedDisk } from './find-attached-disk.js';
import type { HealthResult, Launched, LaunchRequest, Provider } from './provider.js';
import { type HealthCheck, runHealthCheck } from './run-health-check.js';
import { writeImage } from './write-image.js';

export interface AlicloudOptions {
  regionId: string;
  zoneId: string;
  /** Production network, used by failover. */
  vSwitchId: string;
  securityGroupId: string;
  /** Isolated network, used by drills: no route to production, a group that admits the health check only. */
  drillVSwitchId: string;
  drillSecurityGroupId: string;
  instanceType: string;
  /** The ECS instance in the DR region that the new disks are attached to while the images are written. */
  workerInstanceId: string;
  /** ECS API host; `ecs.<regionId>.aliyuncs.com` by default. */
  endpoint?: string;
  protocol?: 'http' | 'https';
  accessKeyId: string;
  accessKeySecret: string;
  healthCheck?: HealthCheck;
  /** Milliseconds between status polls; 2000 by default. */
  attachPoll?: number;
  /**
   * Where the worker's guest lists disks by serial; /dev/disk/by-id by default. An attached disk
   * is found there, never by the `Device` ECS reports (/dev/xvdb is /dev/vdb or /dev/nvme1n1 inside).
   */
  diskByIdDir?: string;
  /** How long an attached disk may take to show under diskByIdDir; 60 s by default. */
  deviceTimeoutMs?: number;
  /** Disk category of the new disks and of the instance's disks; cloud_essd by default. */
  diskCategory?: string;
  /** Performance level of cloud_essd disks: PL0–PL3, PL1 by default (which holds 20 GiB or more). */
  performanceLevel?: string;
  /** The recovered OS as ECS names it (CreateImage's Platform); 'Others Linux' by default. */
  platform?: string;
  /** i386, x86_64 (default) or arm64. */
  architecture?: string;
  /** BIOS (default), UEFI or UEFI-Preferred: how the source server booted. */
  bootMode?: string;
  /**
   * The offline bootability check of the system volume before anything is made in ECS: `enforce`
   * (default) refuses a failover with a blocking problem, `warn` only reports, `off` skips it.
   * Drills always go on, with the problems in their result.
   */
  bootCheck?: 'enforce' | 'warn' | 'off';
  /** The debugfs binary the check reads ext file systems with; `debugfs` on PATH by default. */
  debugfs?: string;
  /** How long the instance may take to reach Running; 10 minutes by default. */
  runningTimeoutMs?: number;
  /** How long any other wait (attach, snapshot, image, delete) may take; 2 hours by default. */
  waitTimeoutMs?: number;
  retry?: RetryPolicy;
  /** DR_HOME on the recovered instance (the source's, on its disks): the way home's agent runs with it. */
  agentHome?: string;
  /** How `dr` is run on the recovered instance; `dr` by default. */
  agentCommand?: string;
}

/** ClientToken of a create call: stable per launch and step, so an SDK retry cannot create twice. */
function clientToken(launch: string, step: string): string {
  return createHash('sha256').update(`${launch}/${step}`).digest('hex').slice(0, 64);
}

/** A name ECS accepts for disks, images and instances: a letter first, then [A-Za-z0-9_.:-], 2–128. */
function ecsName(...parts: string[]): string {
  return parts
    .join('-')
    .replace(/[^\w.:-]/g, '-')
    .slice(0, 128);
}

/**
 * Recovers a point into ECS the way a conversion server does: new disks attached to the worker,
 * images written onto them, snapshots, a custom image and RunInstances, everything tagged with
 * the operation id so `destroy` finds it.
 */
export function createAlicloudProvider(o: AlicloudOptions): Provider {
  const client = createEcsClient(o);
  const secret = o.accessKeySecret;
  const pollMs = o.attachPoll ?? 2000;
  const byIdDir = o.diskByIdDir ?? '/dev/disk/by-id';
  const category = o.diskCategory ?? 'cloud_essd';
  const level = essdLevel(category, o.performanceLevel);
  const res = new EcsResources({
    client,
    secret,
    regionId: o.regionId,
    pollMs,
    waitTimeoutMs: o.waitTimeoutMs ?? 2 * 3600_000,
  });

  const home = alicloudWayHome({
    client,
    secret,
    regionId: o.regionId,
    res,
    byIdDir,
    ...(o.agentHome !== undefined ? { agentHome: o.agentHome } : {}),
    ...(o.agentCommand !== undefined ? { agentCommand: o.agentCommand } : {}),
    ...(o.attachPoll !== undefined ? { pollMs: o.attachPoll } : {}),
    ...(o.runningTimeoutMs !== undefined ? { instanceTimeoutMs: o.runningTimeoutMs } : {}),
  });

  async function launch(req: LaunchRequest): Promise<Launched> {
    const log = req.log.child({ opId: req.opId, app: req.app, provider: 'alicloud' });
    if (!req.volumes[0]) {
      throw new DrError('a launch needs at least one volume', {
        code: 'bad_request',
        subject: req.app,
      });
    }
    const warnings = await bootGate(req, o, log);
    try {
      const launched = await launchSteps(req, log);
      return warnings.length > 0 ? { ...launched, warnings } : launched;
    } catch (err) {
      // Nothing of a failed launch serves anyone: remove it now rather than at the next sweep.
      try {
        const removed = await res.destroy(req.opId, o.workerInstanceId, log);
        log.warn({ removed }, 'launch failed; what it made is removed');
      } catch (cleanupErr) {
        log.error(
          { err: errorMessage(cleanupErr) },
          'launch failed and so did its cleanup; the worker sweeps it at its next start',
        );
      }
      throw err;
    }
  }

  async function launchSteps(req: LaunchRequest, log: Logger): Promise<Launched> {
    const { opId, app, mode, volumes, signal } = req;
    const step = (name: string, fraction: number) => req.onStep?.(name, fraction);
    // A fresh salt per launch: the SDK's own retries of one call share a token (no doubles), and a
    // job retried after this launch cleaned up makes new resources instead of getting dead ids.
    const salt = randomUUID();
    const token = (name: string) => clientToken(`${opId}/${salt}`, name);
    const tags = [
      { key: OP_TAG, value: opId },
      { key: 'lifeboat-app', value: app },
      { key: 'lifeboat-mode', value: mode },
    ];
    const started = performance.now();

    step('disks', 0);
    const disks: { id: string; size: number; path: string }[] = [];
    for (const [i, v] of volumes.entries()) {
      signal.throwIfAborted();
      const size = diskSizeGiB(v.size, category, level);
      const created = await ecsCall('CreateDisk', secret, () =>
        client.createDisk(
          make(CreateDiskRequest, {
            regionId: o.regionId,
            zoneId: o.zoneId,
            size,
            diskCategory: category,
            ...(level ? { performanceLevel: level } : {}),
            diskName: ecsName('lifeboat', app, v.name),
            description: `Lifeboat ${mode} ${opId}: volume ${v.name}`,
            clientToken: token(`disk-${i}`),
            tag: tags.map((t) => make(CreateDiskRequestTag, t)),
          }),
        ),
      );
      const id = created.body?.diskId ?? '';
      disks.push({ id, size, path: '' });
    }
    // New disks start Creating; AttachDisk takes Available ones only.
    for (const d of disks) {
      await res.waitDisk(d.id, 'Available', signal);
      await ecsCall('AttachDisk', secret, () =>
        client.attachDisk(
          make(AttachDiskRequest, { diskId: d.id, instanceId: o.workerInstanceId }),
        ),
      );
    }
    for (const [i, d] of disks.entries()) {
      const disk = await res.waitDisk(d.id, 'In_use', signal);
      d.path = await findAttachedDisk(d.id, disk.serial, {
        byIdDir,
        signal,
        ...(o.deviceTimeoutMs !== undefined ? { timeoutMs: o.deviceTimeoutMs } : {}),
      });
      step('disks', (i + 1) / disks.length);
    }
    log.info(
      {
        disks: disks.map((d) => `${d.id}=${d.path}`),
        ms: Math.round(performance.now() - started),
      },
      'disks attached',
    );

    step('copy', 0);
    const total = volumes.reduce((n, v) => n + v.size, 0) || 1;
    let before = 0;
    for (const [i, v] of volumes.entries()) {
      const d = disks[i];
      if (!d) continue;
      const { written } = await writeImage(v.path, d.path, {
        signal,
        onBytes: (bytes) => step('copy', (before + bytes) / total),
      });
      before += v.size;
      log.info(
        { volume: v.name, disk: d.id, device: d.path, bytes: v.size, written },
        'volume written',
      );
    }
    for (const d of disks) {
      await ecsCall('DetachDisk', secret, () =>
        client.detachDisk(
          make(DetachDiskRequest, { diskId: d.id, instanceId: o.workerInstanceId }),
        ),
      );
    }
    for (const d of disks) await res.waitDisk(d.id, 'Available', signal);

    step('snapshot', 0);
    const snapshots: string[] = [];
    for (const [i, d] of disks.entries()) {
      const made = await ecsCall('CreateSnapshot', secret, () =>
        client.createSnapshot(
          make(CreateSnapshotRequest, {
            diskId: d.id,
            snapshotName: ecsName('lifeboat', opId, String(i)),
            clientToken: token(`snapshot-${i}`),
            tag: tags.map((t) => make(CreateSnapshotRequestTag, t)),
          }),
        ),
      );
      snapshots.push(made.body?.snapshotId ?? '');
    }
    await res.waitSnapshots(snapshots, signal, (f) => step('snapshot', f));
    log.info({ snapshots }, 'snapshots accomplished');

    step('image', 0);
    // The system volume was written to a data disk: its snapshot becomes the image's system disk
    // through DiskDeviceMapping (SnapshotId takes system-disk snapshots only), and ECS must be
    // told the OS, architecture and boot mode it cannot read from a data disk.
    const system = disks[0] as (typeof disks)[number];
    const image = await ecsCall('CreateImage', secret, () =>
      client.createImage(
        make(CreateImageRequest, {
          regionId: o.regionId,
          diskDeviceMapping: [
            make(CreateImageRequestDiskDeviceMapping, {
              snapshotId: snapshots[0] ?? '',
              diskType: 'system',
              size: system.size,
            }),
          ],
          platform: o.platform ?? 'Others Linux',
          architecture: o.architecture ?? 'x86_64',
          bootMode: o.bootMode ?? 'BIOS',
          imageName: ecsName('lifeboat', app, opId),
          description: `Lifeboat ${mode} ${opId} of ${app}`,
          clientToken: token('image'),
          tag: tags.map((t) => make(CreateImageRequestTag, t)),
        }),
      ),
    );
    const imageId = image.body?.imageId ?? '';
    await res.waitImage(imageId, signal);
    step('image', 1);
    log.info({ imageId }, 'image available');

    step('instance', 0);
    const drill = mode === 'drill';
    const vSwitchId = drill ? o.drillVSwitchId : o.vSwitchId;
    const securityGroupId = drill ? o.drillSecurityGroupId : o.securityGroupId;
    const run = await ecsCall('RunInstances', secret, () =>
      client.runInstances(
        make(RunInstancesRequest, {
          regionId: o.regionId,
          zoneId: o.zoneId,
          imageId,
          instanceType: o.instanceType,
          vSwitchId,
          securityGroupId,
          instanceName: ecsName('lifeboat', app, mode),
          description: `Lifeboat ${mode} ${opId}`,
          instanceChargeType: 'PostPaid',
          internetMaxBandwidthOut: 0,
          amount: 1,
          // The default category (cloud_efficiency) is refused by ESSD-only families (g7 and later).
          systemDisk: make(RunInstancesRequestSystemDisk, {
            category,
            size: String(system.size),
            ...(level ? { performanceLevel: level } : {}),
          }),
          dataDisk: disks.slice(1).map((d, i) =>
            make(RunInstancesRequestDataDisk, {
              snapshotId: snapshots[i + 1] ?? '',
              size: d.size,
              category,
              ...(level ? { performanceLevel: level } : {}),
              deleteWithInstance: true,
            }),
          ),
          clientToken: token('instance'),
          tag: tags.map((t) => make(RunInstancesRequestTag, t)),
        }),
      ),
    );
    const id = run.body?.instanceIdSets?.instanceIdSet?.[0];
    if (!id) {
      throw new DrError('RunInstances answered without an instance id', {
        code: 'provider_failed',
        subject: 'RunInstances',
      });
    }
    const instance = await res.waitRunning(id, o.runningTimeoutMs ?? 10 * 60_000, signal);
    step('instance', 1);
    log.info(
      { instanceId: id, ip: instance.ip, ms: Math.round(performance.now() - started) },
      'instance running',
    );
    return {
      provider: 'alicloud',
      id,
      ...(instance.ip ? { endpoint: instance.ip } : {}),
      details: {
        regionId: o.regionId,
        zoneId: o.zoneId,
        vSwitchId,
        securityGroupId,
        instanceType: o.instanceType,
        imageId,
        disks: disks.map((d) => d.id).join(','),
        snapshots: snapshots.join(','),
      },
    };
  }

  async function health(
    server: Launched,
    { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
  ): Promise<HealthResult> {
    const check = o.healthCheck;
    if (check?.url !== undefined || check?.command !== undefined) {
      return runHealthCheck(check, server.endpoint ?? '', { timeoutMs, signal });
    }
    const started = performance.now();
    const status = await res.instanceStatus(server.id);
    return {
      ok: status === 'Running',
      output: `instance ${server.id} is ${status ?? 'gone'}`,
      ms: Math.round(performance.now() - started),
    };
  }

  return {
    kind: 'alicloud',
    launch,
    preflight: (req: LaunchRequest) =>
      bootGate(req, o, req.log.child({ opId: req.opId, app: req.app, provider: 'alicloud' })),
    health,
    stop: home.stop,
    wayHome: {
      start: home.start,
      finalCut: home.finalCut,
      agentLog: home.agentLog,
      restart: home.restart,
    },
    destroy: (opId: string, log: Logger) =>
      res.destroy(opId, o.workerInstanceId, log.child({ opId, provider: 'alicloud' })),
    leftovers: () => res.leftovers(),
  };
}
