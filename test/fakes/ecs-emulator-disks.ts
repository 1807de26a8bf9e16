/** ECS disk and snapshot actions. */
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkDiskSize,
  diskCategories,
  familyCategories,
  performanceLevel,
} from './ecs-emulator-limits.js';
import {
  type Action,
  checkRegion,
  disk,
  instance,
  iso,
  matchesTags,
  notFound,
  paged,
  tagList,
  wrongStatus,
} from './ecs-emulator-query.js';
import {
  byIdName,
  createSparse,
  diskSerial,
  EcsApiError,
  type EcsState,
  type EmuDisk,
  GiB,
  later,
  newId,
  removeFile,
  sparseCopy,
} from './ecs-emulator-state.js';

async function deleteDiskNow(s: EcsState, d: EmuDisk): Promise<void> {
  s.disks.delete(d.id);
  await removeFile(d.file);
}

export const createDisk: Action = async (s, q) => {
  checkRegion(s, q);
  // ZoneId is required unless InstanceId names a subscription instance (not emulated).
  if (q.get('InstanceId') !== undefined) {
    throw new EcsApiError(
      403,
      'InvalidInstanceChargeType.NotFound',
      'Subscription disks attached at creation are not emulated; give ZoneId.',
    );
  }
  const zoneId = q.required('ZoneId');
  if (zoneId !== s.zoneId) {
    throw new EcsApiError(403, 'InvalidZoneId.NotFound', `The zone "${zoneId}" does not exist.`);
  }
  if (q.get('SnapshotId') !== undefined) {
    throw new EcsApiError(400, 'InvalidParameter', 'This emulator makes disks from nothing only.');
  }
  if (q.get('Size') === undefined) {
    throw new EcsApiError(
      400,
      'MissingParameter',
      'The input parameter either "SnapshotId" or "Size" should be specified.',
    );
  }
  // The reference's default category is cloud (basic disk).
  const category = q.get('DiskCategory') ?? 'cloud';
  if (!diskCategories.includes(category)) {
    throw new EcsApiError(
      400,
      'InvalidDiskCategory.NotSupported',
      `Category ${category} is not supported.`,
    );
  }
  const pl = performanceLevel(category, q.get('PerformanceLevel'), 'PerformanceLevel');
  const size = q.int('Size', { min: 1, max: 65_536 });
  checkDiskSize(size, category, pl, 'Size');
  const name = q.get('DiskName');
  if (name !== undefined && !/^[A-Za-z\u4e00-\u9fa5][\w.:-]{1,127}$/.test(name)) {
    throw new EcsApiError(
      400,
      'InvalidDiskName.Malformed',
      `The disk name "${name}" is not valid.`,
    );
  }
  const id = newId('d');
  const file = join(s.dataDir, `${id}.img`);
  await createSparse(file, size * GiB);
  const d: EmuDisk = {
    id,
    name: name ?? '',
    zoneId,
    size,
    category,
    performanceLevel: pl,
    type: 'data',
    status: 'Creating',
    instanceId: '',
    device: '',
    deleteWithInstance: false,
    sourceSnapshotId: '',
    file,
    tags: q.newTags(),
    createdAt: Date.now(),
  };
  s.disks.set(id, d);
  later(s, s.timings.createDiskMs, () => {
    if (d.status === 'Creating') d.status = 'Available';
  });
  return { DiskId: id, OrderId: '' };
};

/** The next free `/dev/xvd?` name on an instance, as the API reports it (xvda is the system disk). */
function nextDevice(s: EcsState, instanceId: string): string {
  const used = new Set(
    [...s.disks.values()].filter((x) => x.instanceId === instanceId).map((x) => x.device),
  );
  for (const letter of 'bcdefghijklmnopqrstuvwxyz') {
    const device = `/dev/xvd${letter}`;
    if (!used.has(device)) return device;
  }
  throw new EcsApiError(403, 'InstanceDiskLimitExceeded', 'The instance has no free disk slot.');
}

export const attachDisk: Action = (s, q) => {
  const d = disk(s, q.required('DiskId'));
  const i = instance(s, q.required('InstanceId'));
  if (d.status !== 'Available') throw wrongStatus('Disk', `disk ${d.id}`, d.status);
  if (i.status !== 'Running' && i.status !== 'Stopped') {
    throw wrongStatus('Instance', `instance ${i.id}`, i.status);
  }
  if (d.zoneId !== i.zoneId) {
    throw new EcsApiError(
      403,
      'InvalidDiskId.ZoneMismatched',
      'The disk and the instance are in different zones.',
    );
  }
  if (!familyCategories(i.instanceType).includes(d.category)) {
    throw new EcsApiError(
      403,
      'InvalidDiskCategory.NotSupported',
      `The instance type ${i.instanceType} does not support disks of category ${d.category}.`,
    );
  }
  d.status = 'Attaching';
  d.instanceId = i.id;
  d.device = nextDevice(s, i.id);
  d.deleteWithInstance = q.bool('DeleteWithInstance');
  later(s, s.timings.attachMs, () => {
    d.status = 'In_use';
    if (i.id === s.workerInstanceId) {
      s.chores.push(
        symlink(d.file, join(s.byIdDir, byIdName(s, d.id))).catch((err: NodeJS.ErrnoException) => {
          // a link left by an earlier attach of the same disk points at the same file
          if (err.code !== 'EEXIST') throw err;
        }),
      );
    }
  });
  return {};
};

export const detachDisk: Action = (s, q) => {
  const d = disk(s, q.required('DiskId'));
  const instanceId = q.required('InstanceId');
  instance(s, instanceId);
  if (d.status !== 'In_use' || d.instanceId !== instanceId) {
    throw wrongStatus('Disk', `disk ${d.id}`, d.status);
  }
  if (d.type === 'system') throw wrongStatus('Disk', `system disk ${d.id}`, d.status);
  d.status = 'Detaching';
  if (instanceId === s.workerInstanceId) {
    s.chores.push(removeFile(join(s.byIdDir, byIdName(s, d.id))));
  }
  later(s, s.timings.detachMs, () => {
    d.status = 'Available';
    d.instanceId = '';
    d.device = '';
  });
  return {};
};

export const deleteDisk: Action = async (s, q) => {
  const d = disk(s, q.required('DiskId'));
  if (d.status !== 'Available') throw wrongStatus('Disk', `disk ${d.id}`, d.status);
  await deleteDiskNow(s, d);
  return {};
};

export const describeDisks: Action = (s, q) => {
  checkRegion(s, q);
  const ids = q.jsonList('DiskIds');
  const instanceId = q.get('InstanceId');
  const status = q.get('Status');
  const tags = q.tags();
  const all = [...s.disks.values()].filter(
    (d) =>
      (ids === undefined || ids.includes(d.id)) &&
      (instanceId === undefined || d.instanceId === instanceId) &&
      (status === undefined || status === 'All' || d.status === status) &&
      matchesTags(d.tags, tags),
  );
  const p = paged(all, q);
  return {
    TotalCount: p.total,
    PageNumber: p.number,
    PageSize: p.size,
    Disks: {
      Disk: p.items.map((d) => ({
        DiskId: d.id,
        DiskName: d.name,
        RegionId: s.regionId,
        ZoneId: d.zoneId,
        Size: d.size,
        Category: d.category,
        ...(d.performanceLevel ? { PerformanceLevel: d.performanceLevel } : {}),
        Type: d.type,
        SerialNumber: diskSerial(d.id),
        Status: d.status,
        InstanceId: d.instanceId,
        Device: d.device,
        DeleteWithInstance: d.deleteWithInstance,
        SourceSnapshotId: d.sourceSnapshotId,
        CreationTime: iso(d.createdAt),
        Tags: tagList(d.tags),
      })),
    },
  };
};

export const createSnapshot: Action = async (s, q) => {
  const d = disk(s, q.required('DiskId'));
  if (d.status !== 'Available' && d.status !== 'In_use') {
    throw wrongStatus('Disk', `disk ${d.id}`, d.status);
  }
  if ([...s.snapshots.values()].some((x) => x.diskId === d.id && x.status === 'progressing')) {
    throw new EcsApiError(
      403,
      'IncorrectDiskStatus.CreatingSnapshot',
      'A previous snapshot creation is in process.',
    );
  }
  const id = newId('s');
  const file = join(s.dataDir, `${id}.snap`);
  await sparseCopy(d.file, file, d.size * GiB);
  const now = Date.now();
  const snap = {
    id,
    name: q.get('SnapshotName') ?? '',
    diskId: d.id,
    diskSize: d.size,
    diskType: d.type,
    status: 'progressing' as 'progressing' | 'accomplished',
    file,
    tags: q.newTags(),
    createdAt: now,
    readyAt: now + s.timings.snapshotMs,
  };
  s.snapshots.set(id, snap);
  later(s, s.timings.snapshotMs, () => {
    snap.status = 'accomplished';
  });
  return { SnapshotId: id };
};

export const deleteSnapshot: Action = async (s, q) => {
  const id = q.required('SnapshotId');
  const snap = s.snapshots.get(id);
  if (!snap) throw notFound('SnapshotId', id);
  if ([...s.images.values()].some((m) => m.snapshotId === id)) {
    throw new EcsApiError(
      403,
      'SnapshotCreatedImage',
      'The snapshot has been used to create a custom image.',
    );
  }
  if (!q.bool('Force') && [...s.disks.values()].some((d) => d.sourceSnapshotId === id)) {
    throw new EcsApiError(
      403,
      'SnapshotCreatedDisk',
      'The snapshot has been used to create disks.',
    );
  }
  s.snapshots.delete(id);
  await removeFile(snap.file);
  return {};
};

export const describeSnapshots: Action = (s, q) => {
  checkRegion(s, q);
  const ids = q.jsonList('SnapshotIds');
  const status = q.get('Status');
  const tags = q.tags();
  const now = Date.now();
  const all = [...s.snapshots.values()].filter(
    (x) =>
      (ids === undefined || ids.includes(x.id)) &&
      (status === undefined || status === 'all' || x.status === status) &&
      matchesTags(x.tags, tags),
  );
  const p = paged(all, q);
  return {
    TotalCount: p.total,
    PageNumber: p.number,
    PageSize: p.size,
    Snapshots: {
      Snapshot: p.items.map((x) => ({
        SnapshotId: x.id,
        SnapshotName: x.name,
        SourceDiskId: x.diskId,
        SourceDiskSize: String(x.diskSize),
        SourceDiskType: x.diskType === 'system' ? 'System' : 'Data',
        Status: x.status,
        Progress: `${x.status === 'accomplished' ? 100 : Math.min(99, Math.floor((100 * (now - x.createdAt)) / (x.readyAt - x.createdAt + 1)))}%`,
        Available: x.status === 'accomplished',
        CreationTime: iso(x.createdAt),
        Tags: tagList(x.tags),
      })),
    },
  };
};
