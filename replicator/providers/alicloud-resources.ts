import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteDiskRequest,
  DeleteImageRequest,
  DeleteInstancesRequest,
  DeleteSnapshotRequest,
  DescribeDisksRequest,
  DescribeDisksRequestTag,
  DescribeImagesRequest,
  DescribeImagesRequestTag,
  DescribeInstancesRequest,
  DescribeInstancesRequestTag,
  DescribeSnapshotsRequest,
  DescribeSnapshotsRequestTag,
  DetachDiskRequest,
} from '@alicloud/ecs20140526';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { type EcsClient, EcsError, ecsCall, make } from './alicloud-ecs.js';

/** The tag every resource of an operation carries: lifeboat-op=<opId>. */
export const OP_TAG = 'lifeboat-op';

/** Every image status, so Describe shows images still being made (ECS shows Available ones only by default). */
const ALL_IMAGE_STATUSES = 'Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated';
const PAGE = 100;

interface Tagged {
  id: string;
  status: string;
  tags: Map<string, string>;
}
interface Disk extends Tagged {
  device: string;
  instanceId: string;
  /** The serial the guest sees (DescribeDisks' SerialNumber); '' when ECS does not say. */
  serial: string;
  /** system or data. */
  type: string;
  /** The snapshot the disk was made from ('' for an empty disk). */
  sourceSnapshotId: string;
}
interface Instance extends Tagged {
  ip: string;
}

type TagList = { tag?: { tagKey?: string; tagValue?: string }[] } | undefined;
const tagMap = (t: TagList) =>
  new Map((t?.tag ?? []).map((x) => [x.tagKey ?? '', x.tagValue ?? '']));

export interface EcsResourcesOptions {
  client: EcsClient;
  /** Only to scrub it from error text. */
  secret: string;
  regionId: string;
  pollMs: number;
  waitTimeoutMs: number;
}

/** Finding, waiting for and deleting ECS resources; the part of the provider that `destroy` needs. */
export class EcsResources {
  constructor(private readonly o: EcsResourcesOptions) {}

  private call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    return ecsCall(action, this.o.secret, fn);
  }

  private async all<T>(
    fetch: (page: number) => Promise<{ items: T[]; total: number }>,
  ): Promise<T[]> {
    const out: T[] = [];
    for (let page = 1; ; page++) {
      const { items, total } = await fetch(page);
      out.push(...items);
      if (items.length === 0 || out.length >= total) return out;
    }
  }

  async disks(filter: { ids?: string[]; tag?: [string, string?] }): Promise<Disk[]> {
    return this.all(async (pageNumber) => {
      const r = await this.call('DescribeDisks', () =>
        this.o.client.describeDisks(
          make(DescribeDisksRequest, {
            regionId: this.o.regionId,
            pageNumber,
            pageSize: PAGE,
            ...(filter.ids ? { diskIds: JSON.stringify(filter.ids) } : {}),
            ...(filter.tag ? { tag: [make(DescribeDisksRequestTag, tagFilter(filter.tag))] } : {}),
          }),
        ),
      );
      const items = (r.body?.disks?.disk ?? []).map((d) => ({
        id: d.diskId ?? '',
        status: d.status ?? '',
        device: d.device ?? '',
        instanceId: d.instanceId ?? '',
        serial: d.serialNumber ?? '',
        type: d.type ?? '',
        sourceSnapshotId: d.sourceSnapshotId ?? '',
        tags: tagMap(d.tags),
      }));
      return { items, total: r.body?.totalCount ?? items.length };
    });
  }

  async snapshots(filter: { ids?: string[]; tag?: [string, string?] }) {
    return this.all(async (pageNumber) => {
      const r = await this.call('DescribeSnapshots', () =>
        this.o.client.describeSnapshots(
          make(DescribeSnapshotsRequest, {
            regionId: this.o.regionId,
            pageNumber,
            pageSize: PAGE,
            ...(filter.ids ? { snapshotIds: JSON.stringify(filter.ids) } : {}),
            ...(filter.tag
              ? { tag: [make(DescribeSnapshotsRequestTag, tagFilter(filter.tag))] }
              : {}),
          }),
        ),
      );
      const items = (r.body?.snapshots?.snapshot ?? []).map((s) => ({
        id: s.snapshotId ?? '',
        status: s.status ?? '',
        progress: Number.parseInt(s.progress ?? '0', 10) / 100 || 0,
        tags: tagMap(s.tags),
      }));
      return { items, total: r.body?.totalCount ?? items.length };
    });
  }

  async images(filter: { id?: string; tag?: [string, string?] }): Promise<Tagged[]> {
    return this.all(async (pageNumber) => {
      const r = await this.call('DescribeImages', () =>
        this.o.client.describeImages(
          make(DescribeImagesRequest, {
            regionId: this.o.regionId,
            status: ALL_IMAGE_STATUSES,
            imageOwnerAlias: 'self',
            pageNumber,
            pageSize: PAGE,
            ...(filter.id ? { imageId: filter.id } : {}),
            ...(filter.tag ? { tag: [make(DescribeImagesRequestTag, tagFilter(filter.tag))] } : {}),
          }),
        ),
      );
      const items = (r.body?.images?.image ?? []).map((m) => ({
        id: m.imageId ?? '',
        status: m.status ?? '',
        tags: tagMap(m.tags),
      }));
      return { items, total: r.body?.totalCount ?? items.length };
    });
  }

  async instances(filter: { ids?: string[]; tag?: [string, string?] }): Promise<Instance[]> {
    return this.all(async (pageNumber) => {
      const r = await this.call('DescribeInstances', () =>
        this.o.client.describeInstances(
          make(DescribeInstancesRequest, {
            regionId: this.o.regionId,
            pageNumber,
            pageSize: PAGE,
            ...(filter.ids ? { instanceIds: JSON.stringify(filter.ids) } : {}),
            ...(filter.tag
              ? { tag: [make(DescribeInstancesRequestTag, tagFilter(filter.tag))] }
              : {}),
          }),
        ),
      );
      const items = (r.body?.instances?.instance ?? []).map((i) => ({
        id: i.instanceId ?? '',
        status: i.status ?? '',
        ip: i.vpcAttributes?.privateIpAddress?.ipAddress?.[0] ?? '',
        tags: tagMap(i.tags),
      }));
      return { items, total: r.body?.totalCount ?? items.length };
    });
  }

  async instanceStatus(id: string): Promise<string | undefined> {
    return (await this.instances({ ids: [id] }))[0]?.status;
  }

  /**
   * Polls until `probe` says done, bounded by `timeoutMs`, the pause growing by half each time
   * from pollMs up to 8 times it; the error names what and its last status.
   */
  private async poll<T>(
    what: string,
    timeoutMs: number,
    signal: AbortSignal,
    probe: () => Promise<{ done: boolean; status: string; value: T }>,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let pause = this.o.pollMs;
    for (;;) {
      signal.throwIfAborted();
      const r = await probe();
      if (r.done) return r.value;
      if (Date.now() >= deadline) {
        throw new DrError(
          `${what} within ${Math.round(timeoutMs / 1000)} s (last status: ${r.status || 'none'})`,
          {
            code: 'provider_failed',
            subject: what.split(' ')[1] ?? what,
            remedy:
              'look at it in the ECS console, then retry; destroy removes what this operation made',
          },
        );
      }
      await sleep(Math.min(pause, Math.max(0, deadline - Date.now())), undefined, { signal });
      pause = Math.min(pause * 1.5, this.o.pollMs * 8);
    }
  }

  waitDisk(id: string, status: 'In_use' | 'Available', signal: AbortSignal): Promise<Disk> {
    return this.poll(
      `disk ${id} did not become ${status}`,
      this.o.waitTimeoutMs,
      signal,
      async () => {
        const d = (await this.disks({ ids: [id] }))[0];
        if (!d) throw gone('disk', id);
        return { done: d.status === status, status: d.status, value: d };
      },
    );
  }

  waitSnapshots(ids: string[], signal: AbortSignal, progress: (f: number) => void): Promise<void> {
    const what = `snapshots ${ids.join(',')} were not accomplished`;
    return this.poll(what, this.o.waitTimeoutMs, signal, async () => {
      const found = await this.snapshots({ ids });
      const failed = found.find((s) => s.status === 'failed');
      if (failed)
        throw new DrError(`snapshot ${failed.id} failed`, {
          code: 'provider_failed',
          subject: failed.id,
        });
      const done = found.filter((s) => s.status === 'accomplished').length;
      progress(
        found.reduce((n, s) => n + (s.status === 'accomplished' ? 1 : s.progress), 0) / ids.length,
      );
      const status = found.map((s) => s.status).join(',');
      return { done: found.length === ids.length && done === ids.length, status, value: undefined };
    });
  }

  waitImage(id: string, signal: AbortSignal): Promise<void> {
    return this.poll(
      `image ${id} did not become Available`,
      this.o.waitTimeoutMs,
      signal,
      async () => {
        const m = (await this.images({ id }))[0];
        if (!m) throw gone('image', id);
        if (m.status === 'CreateFailed' || m.status === 'UnAvailable') {
          throw new DrError(`image ${id} is ${m.status}`, { code: 'provider_failed', subject: id });
        }
        return { done: m.status === 'Available', status: m.status, value: undefined };
      },
    );
  }

  waitRunning(id: string, timeoutMs: number, signal: AbortSignal): Promise<Instance> {
    return this.waitInstance(id, 'Running', timeoutMs, signal);
  }

  waitInstance(
    id: string,
    status: 'Running' | 'Stopped',
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<Instance> {
    return this.poll(`instance ${id} did not reach ${status}`, timeoutMs, signal, async () => {
      const i = (await this.instances({ ids: [id] }))[0];
      if (!i) throw gone('instance', id);
      return { done: i.status === status, status: i.status, value: i };
    });
  }

  /** Deletes what the operation made: instances (waiting until gone), images, snapshots, disks. */
  async destroy(opId: string, workerInstanceId: string, log: Logger): Promise<string[]> {
    const tag: [string, string] = [OP_TAG, opId];
    const removed: string[] = [];
    const never = new AbortController().signal;
    const instances = (await this.instances({ tag })).filter((i) => i.id !== workerInstanceId);
    for (let n = 0; n < instances.length; n += 100) {
      const ids = instances.slice(n, n + 100).map((i) => i.id);
      await this.tolerateGone(() =>
        this.call('DeleteInstances', () =>
          this.o.client.deleteInstances(
            make(DeleteInstancesRequest, {
              regionId: this.o.regionId,
              instanceId: ids,
              force: true,
            }),
          ),
        ),
      );
    }
    if (instances.length > 0) {
      await this.poll('instances were not released', this.o.waitTimeoutMs, never, async () => {
        const left = (await this.instances({ tag })).filter((i) => i.id !== workerInstanceId);
        return {
          done: left.length === 0,
          status: left.map((i) => `${i.id} ${i.status}`).join(','),
          value: 0,
        };
      });
      removed.push(...instances.map((i) => i.id));
      log.info({ instances: instances.map((i) => i.id) }, 'instances released');
    }
    for (const m of await this.images({ tag })) {
      await this.tolerateGone(() =>
        this.call('DeleteImage', () =>
          this.o.client.deleteImage(
            make(DeleteImageRequest, { regionId: this.o.regionId, imageId: m.id, force: true }),
          ),
        ),
      );
      removed.push(m.id);
    }
    for (const s of await this.snapshots({ tag })) {
      await this.tolerateGone(() =>
        this.call('DeleteSnapshot', () =>
          this.o.client.deleteSnapshot(
            make(DeleteSnapshotRequest, { snapshotId: s.id, force: true }),
          ),
        ),
      );
      removed.push(s.id);
    }
    for (const d of await this.disks({ tag })) {
      // A crash can leave a disk attached to the worker (or mid attach): detach it first.
      let status = d.status;
      if (status === 'Attaching' || status === 'Detaching') {
        status = (await this.waitSettled(d.id, never)).status;
      }
      if (status === 'In_use') {
        await this.tolerateGone(() =>
          this.call('DetachDisk', () =>
            this.o.client.detachDisk(
              make(DetachDiskRequest, { diskId: d.id, instanceId: d.instanceId }),
            ),
          ),
        );
        await this.waitDisk(d.id, 'Available', never);
      }
      await this.tolerateGone(() =>
        this.call('DeleteDisk', () =>
          this.o.client.deleteDisk(make(DeleteDiskRequest, { diskId: d.id })),
        ),
      );
      removed.push(d.id);
    }
    if (removed.length > 0) log.info({ removed }, 'operation resources deleted');
    return removed;
  }

  private waitSettled(id: string, signal: AbortSignal): Promise<Disk> {
    return this.poll(`disk ${id} did not settle`, this.o.waitTimeoutMs, signal, async () => {
      const d = (await this.disks({ ids: [id] }))[0];
      if (!d) throw gone('disk', id);
      return {
        done: d.status === 'In_use' || d.status === 'Available',
        status: d.status,
        value: d,
      };
    });
  }

  /** Deleting something already gone is success: destroy is idempotent. */
  private async tolerateGone(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (err instanceof EcsError && /NotFound$/.test(err.ecsCode)) return;
      throw err;
    }
  }

  /** Operation ids that still own an instance, image, snapshot or disk. */
  async leftovers(): Promise<string[]> {
    const tag: [string] = [OP_TAG];
    const found = [
      ...(await this.instances({ tag })),
      ...(await this.images({ tag })),
      ...(await this.snapshots({ tag })),
      ...(await this.disks({ tag })),
    ];
    return [...new Set(found.map((r) => r.tags.get(OP_TAG) ?? ''))].filter(Boolean).sort();
  }
}

function tagFilter([key, value]: [string, string?]): { key: string; value?: string } {
  return value === undefined ? { key } : { key, value };
}

function gone(kind: string, id: string): DrError {
  return new DrError(`the ${kind} ${id} no longer exists`, {
    code: 'provider_failed',
    subject: id,
    remedy: 'someone deleted it while the operation ran; run it again',
  });
}
