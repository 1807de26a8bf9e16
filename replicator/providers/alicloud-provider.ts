import { createHash } from 'node:crypto';
import {
  AttachDiskRequest,
  CreateDiskRequest,
  CreateDiskRequestTag,
  CreateImageRequest,
  CreateImageRequestTag,
  CreateSnapshotRequest,
  CreateSnapshotRequestTag,
  DetachDiskRequest,
  RunInstancesRequest,
  RunInstancesRequestDataDisk,
  RunInstancesRequestTag,
} from '@alicloud/ecs20140526';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { createEcsClient, ecsCall, make, type RetryPolicy } from './alicloud-ecs.js';
import { EcsResources, OP_TAG } from './alicloud-resources.js';
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
  /** Maps the device name ECS reports for an attached disk to a path on the worker; identity by default. */
  devicePath?: (diskDevice: string) => string;
  /** Disk category of the new disks; cloud_essd by default. */
  diskCategory?: string;
  /** How long the instance may take to reach Running; 10 minutes by default. */
  runningTimeoutMs?: number;
  /** How long any other wait (attach, snapshot, image, delete) may take; 2 hours by default. */
  waitTimeoutMs?: number;
  retry?: RetryPolicy;
}

const GiB = 1024 ** 3;

/** ClientToken of a create call: stable per operation and step, so an SDK retry cannot create twice. */
function token(opId: string, step: string): string {
  return createHash('sha256').update(`${opId}/${step}`).digest('hex').slice(0, 64);
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
  const devicePath = o.devicePath ?? ((d: string) => d);
  const category = o.diskCategory ?? 'cloud_essd';
  const res = new EcsResources({
    client,
    secret,
    regionId: o.regionId,
    pollMs,
    waitTimeoutMs: o.waitTimeoutMs ?? 2 * 3600_000,
  });

  async function launch(req: LaunchRequest): Promise<Launched> {
    const { opId, app, mode, volumes, signal } = req;
    const log = req.log.child({ opId, app, provider: 'alicloud' });
    const step = (name: string, fraction: number) => req.onStep?.(name, fraction);
    const system = volumes[0];
    if (!system) {
      throw new DrError('a launch needs at least one volume', {
        code: 'bad_request',
        subject: app,
      });
    }
    const tags = [
      { key: OP_TAG, value: opId },
      { key: 'lifeboat-app', value: app },
      { key: 'lifeboat-mode', value: mode },
    ];
    const started = performance.now();

    step('disks', 0);
    const disks: { id: string; size: number; device: string }[] = [];
    for (const [i, v] of volumes.entries()) {
      signal.throwIfAborted();
      const size = Math.max(1, Math.ceil(v.size / GiB));
      const created = await ecsCall('CreateDisk', secret, () =>
        client.createDisk(
          make(CreateDiskRequest, {
            regionId: o.regionId,
            zoneId: o.zoneId,
            size,
            diskCategory: category,
            diskName: ecsName('lifeboat', app, v.name),
            description: `Lifeboat ${mode} ${opId}: volume ${v.name}`,
            clientToken: token(opId, `disk-${i}`),
            tag: tags.map((t) => make(CreateDiskRequestTag, t)),
          }),
        ),
      );
      const id = created.body?.diskId ?? '';
      await ecsCall('AttachDisk', secret, () =>
        client.attachDisk(make(AttachDiskRequest, { diskId: id, instanceId: o.workerInstanceId })),
      );
      disks.push({ id, size, device: '' });
      step('disks', (i + 0.5) / volumes.length);
    }
    for (const [i, d] of disks.entries()) {
      const disk = await res.waitDisk(d.id, 'In_use', signal);
      if (!disk.device) {
        throw new DrError(`ECS reports no device for disk ${d.id}`, {
          code: 'provider_failed',
          subject: d.id,
        });
      }
      d.device = disk.device;
      step('disks', (i + 1) / disks.length);
    }
    log.info(
      { disks: disks.map((d) => d.id), ms: Math.round(performance.now() - started) },
      'disks attached',
    );

    step('copy', 0);
    const total = volumes.reduce((n, v) => n + v.size, 0) || 1;
    let before = 0;
    for (const [i, v] of volumes.entries()) {
      const d = disks[i];
      if (!d) continue;
      const path = devicePath(d.device);
      const { written } = await writeImage(v.path, path, {
        signal,
        onBytes: (bytes) => step('copy', (before + bytes) / total),
      });
      before += v.size;
      log.info(
        { volume: v.name, disk: d.id, device: path, bytes: v.size, written },
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
            clientToken: token(opId, `snapshot-${i}`),
            tag: tags.map((t) => make(CreateSnapshotRequestTag, t)),
          }),
        ),
      );
      snapshots.push(made.body?.snapshotId ?? '');
    }
    await res.waitSnapshots(snapshots, signal, (f) => step('snapshot', f));
    log.info({ snapshots }, 'snapshots accomplished');

    step('image', 0);
    const image = await ecsCall('CreateImage', secret, () =>
      client.createImage(
        make(CreateImageRequest, {
          regionId: o.regionId,
          snapshotId: snapshots[0] ?? '',
          imageName: ecsName('lifeboat', app, opId),
          description: `Lifeboat ${mode} ${opId} of ${app}`,
          clientToken: token(opId, 'image'),
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
          dataDisk: disks.slice(1).map((d, i) =>
            make(RunInstancesRequestDataDisk, {
              snapshotId: snapshots[i + 1] ?? '',
              size: d.size,
              category,
              deleteWithInstance: true,
            }),
          ),
          clientToken: token(opId, 'instance'),
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
    health,
    destroy: (opId: string, log: Logger) =>
      res.destroy(opId, o.workerInstanceId, log.child({ opId, provider: 'alicloud' })),
    leftovers: () => res.leftovers(),
  };
}
