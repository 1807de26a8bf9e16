import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { EmuInvocation, GuestRunner } from './ecs-emulator-assistant.js';

const exec = promisify(execFile);

/** An OpenAPI error as ECS returns it: HTTP status, `Code` and `Message`. */
export class EcsApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Tags = Map<string, string>;

export interface EmuDisk {
  id: string;
  name: string;
  zoneId: string;
  /** GiB */
  size: number;
  category: string;
  type: 'system' | 'data';
  /** ECS_essd performance level (PL0–PL3) of a cloud_essd disk; '' for other categories. */
  performanceLevel: string;
  status: 'Creating' | 'Available' | 'Attaching' | 'In_use' | 'Detaching';
  instanceId: string;
  /**
   * The device name the API reports (`/dev/xvdb`…), which is not the guest's name for the disk:
   * the guest finds it by serial under its by-id directory (see EcsState.byIdDir).
   */
  device: string;
  deleteWithInstance: boolean;
  sourceSnapshotId: string;
  /** The disk's content: a sparse file of `size` GiB. */
  file: string;
  tags: Tags;
  createdAt: number;
}

export interface EmuSnapshot {
  id: string;
  name: string;
  diskId: string;
  /** GiB of the disk it was taken from. */
  diskSize: number;
  /** Whether the disk it was taken from was a system or a data disk: CreateImage cares. */
  diskType: 'system' | 'data';
  status: 'progressing' | 'accomplished';
  /** Copy of the disk's content at the instant CreateSnapshot was called. */
  file: string;
  tags: Tags;
  createdAt: number;
  readyAt: number;
}

/** One disk of an image: the system disk first, then data disks. */
export interface EmuImageDisk {
  snapshotId: string;
  type: 'system' | 'data';
  size: number;
}

export interface EmuImage {
  id: string;
  name: string;
  /** The system disk's snapshot (disks[0]). */
  snapshotId: string;
  size: number;
  disks: EmuImageDisk[];
  platform: string;
  architecture: string;
  bootMode: string;
  status: 'Creating' | 'Available';
  tags: Tags;
  createdAt: number;
}

export interface EmuInstance {
  id: string;
  name: string;
  zoneId: string;
  instanceType: string;
  imageId: string;
  vSwitchId: string;
  securityGroupIds: string[];
  privateIp: string;
  status: 'Pending' | 'Starting' | 'Running' | 'Stopping' | 'Stopped';
  tags: Tags;
  createdAt: number;
}

export interface EcsTimings {
  /** CreateDisk: Creating → Available */
  createDiskMs: number;
  attachMs: number;
  detachMs: number;
  snapshotMs: number;
  imageMs: number;
  /** Pending → Starting */
  pendingMs: number;
  /** Starting → Running */
  startingMs: number;
  /** DeleteInstances → gone */
  deleteMs: number;
  /** StopInstance: Stopping → Stopped */
  stopMs: number;
  /** Cloud Assistant: RunCommand → the command starts on the instance (Pending → Running) */
  invokeMs: number;
}

export const defaultTimings: EcsTimings = {
  createDiskMs: 80,
  attachMs: 60,
  detachMs: 60,
  snapshotMs: 150,
  imageMs: 150,
  pendingMs: 80,
  startingMs: 120,
  deleteMs: 100,
  stopMs: 100,
  invokeMs: 50,
};

export interface EmuVSwitch {
  id: string;
  zoneId: string;
  vpcId: string;
  /** First three octets; addresses are handed out from .10 upwards. */
  prefix: string;
  next: number;
}

/** What the emulated region holds; tests read it to check what the provider did. */
export interface EcsState {
  regionId: string;
  zoneId: string;
  disks: Map<string, EmuDisk>;
  snapshots: Map<string, EmuSnapshot>;
  images: Map<string, EmuImage>;
  instances: Map<string, EmuInstance>;
  vSwitches: Map<string, EmuVSwitch>;
  securityGroups: Set<string>;
  /** The ECS instance disks are attached to while the provider writes them (the conversion server). */
  workerInstanceId: string;
  /** Network made at start: a production vSwitch and security group, and isolated ones for drills. */
  network: {
    vSwitchId: string;
    securityGroupId: string;
    drillVSwitchId: string;
    drillSecurityGroupId: string;
  };
  /** While true, new instances stay in Starting forever (a boot that never finishes). */
  stallInstances: boolean;
  /** Every request that passed authentication, in order, with the Code it failed with, if any. */
  requests: { action: string; status: number; code?: string }[];
  timings: EcsTimings;
  dataDir: string;
  /**
   * The worker guest's /dev/disk/by-id: a symlink per attached disk, named by its serial the way
   * the guest kernel names it (`virtio-<serial>` or `nvme-Alibaba_Cloud_Elastic_Block_Storage_<serial>`),
   * pointing at the disk's backing file.
   */
  byIdDir: string;
  /** How the worker's guest sees attached disks: virtio-blk (g7 and before) or NVMe (8th-gen families). */
  diskInterface: 'virtio' | 'nvme';
  /** Status changes due at a time; applied before each request. */
  due: { at: number; apply: () => void }[];
  /** ClientToken → the response of the first call with it, for idempotent retries. */
  tokens: Map<string, { query: string; body: Record<string, unknown> }>;
  /** File work started by a status change; finished before the next request is answered. */
  chores: Promise<unknown>[];
  /** Cloud Assistant invocations by InvokeId. */
  invocations: Map<string, EmuInvocation>;
  /** Commands running on guests (they end whenever they end; not awaited by requests). */
  running: Promise<unknown>[];
  /** How a guest runs a Cloud Assistant command; a local `sh` when unset. */
  guest: GuestRunner | undefined;
  /** Instances whose Cloud Assistant client is not running (commands fail with ClientNotRunning). */
  assistantOffline: Set<string>;
}

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, 18)}`;
}

export const GiB = 1024 ** 3;

export function createState(
  regionId: string,
  zoneId: string,
  dataDir: string,
  diskInterface: 'virtio' | 'nvme' = 'virtio',
): EcsState {
  const vpcId = newId('vpc');
  const prod: EmuVSwitch = { id: newId('vsw'), zoneId, vpcId, prefix: '10.0.1', next: 10 };
  const drill: EmuVSwitch = { id: newId('vsw'), zoneId, vpcId, prefix: '10.99.0', next: 10 };
  const sgProd = newId('sg');
  const sgDrill = newId('sg');
  const state: EcsState = {
    regionId,
    zoneId,
    disks: new Map(),
    snapshots: new Map(),
    images: new Map(),
    instances: new Map(),
    vSwitches: new Map([
      [prod.id, prod],
      [drill.id, drill],
    ]),
    securityGroups: new Set([sgProd, sgDrill]),
    workerInstanceId: newId('i'),
    network: {
      vSwitchId: prod.id,
      securityGroupId: sgProd,
      drillVSwitchId: drill.id,
      drillSecurityGroupId: sgDrill,
    },
    stallInstances: false,
    requests: [],
    timings: defaultTimings,
    dataDir,
    byIdDir: join(dataDir, 'by-id'),
    diskInterface,
    due: [],
    tokens: new Map(),
    chores: [],
    invocations: new Map(),
    running: [],
    guest: undefined,
    assistantOffline: new Set(),
  };
  state.instances.set(state.workerInstanceId, {
    id: state.workerInstanceId,
    name: 'dr-worker',
    zoneId,
    instanceType: 'ecs.g7.large',
    imageId: 'aliyun_3_x64_20G_alibase_20240819.vhd',
    vSwitchId: prod.id,
    securityGroupIds: [sgProd],
    privateIp: nextIp(prod),
    status: 'Running',
    tags: new Map(),
    createdAt: Date.now(),
  });
  return state;
}

export function nextIp(vsw: EmuVSwitch): string {
  const ip = `${vsw.prefix}.${vsw.next}`;
  vsw.next += 1;
  return ip;
}

export function later(state: EcsState, ms: number, apply: () => void): void {
  state.due.push({ at: Date.now() + ms, apply });
  state.due.sort((a, b) => a.at - b.at);
}

/** Applies every status change whose time has come, and waits for the file work they start. */
export async function tick(state: EcsState): Promise<void> {
  const now = Date.now();
  while (state.due.length > 0 && (state.due[0]?.at ?? Number.POSITIVE_INFINITY) <= now) {
    state.due.shift()?.apply();
  }
  const chores = state.chores.splice(0);
  await Promise.all(chores);
}

const CHUNK = 1024 * 1024;

/**
 * Copies `from` into a new sparse file of `size` bytes at `to`, skipping zero chunks,
 * as a snapshot or a disk made from one holds the same bytes without the holes costing space.
 */
export async function sparseCopy(from: string, to: string, size: number): Promise<void> {
  try {
    // GNU cp finds the data with SEEK_DATA and skips the holes without reading them.
    await exec('cp', ['--sparse=always', '--reflink=auto', from, to]);
    await truncate(to, size);
    return;
  } catch {
    // no GNU cp here (macOS): copy chunk by chunk below
  }
  const src = await open(from, 'r');
  const dst = await open(to, 'w');
  try {
    await dst.truncate(size);
    const { size: srcSize } = await src.stat();
    const buf = Buffer.alloc(CHUNK);
    for (let pos = 0; pos < Math.min(srcSize, size); pos += CHUNK) {
      const { bytesRead } = await src.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      if (!isZero(chunk)) await dst.write(chunk, 0, bytesRead, pos);
    }
  } finally {
    await src.close();
    await dst.close();
  }
}

export async function createSparse(path: string, size: number): Promise<void> {
  const f = await open(path, 'w');
  try {
    await f.truncate(size);
  } finally {
    await f.close();
  }
}

export async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    // a file already gone is what we wanted
    if (err.code !== 'ENOENT') throw err;
  });
}

const ZERO = Buffer.alloc(CHUNK);

function isZero(b: Buffer): boolean {
  return b.equals(ZERO.subarray(0, b.length));
}

/** The serial a disk shows its guest: the disk id without `d-`, at most 20 characters (virtio-blk's limit). */
export function diskSerial(diskId: string): string {
  return diskId.replace(/^d-/, '').slice(0, 20);
}

/** The name of the disk's link under the guest's /dev/disk/by-id. */
export function byIdName(state: EcsState, diskId: string): string {
  const serial = diskSerial(diskId);
  return state.diskInterface === 'nvme'
    ? `nvme-Alibaba_Cloud_Elastic_Block_Storage_${serial}`
    : `virtio-${serial}`;
}
