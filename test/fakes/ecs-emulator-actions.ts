import {
  attachDisk,
  createDisk,
  createSnapshot,
  deleteDisk,
  deleteSnapshot,
  describeDisks,
  describeSnapshots,
  detachDisk,
} from './ecs-emulator-disks.js';
import {
  createImage,
  deleteImage,
  deleteInstances,
  describeImages,
  describeInstances,
  runInstances,
} from './ecs-emulator-instances.js';
import type { Action } from './ecs-emulator-query.js';

export const actions: Record<string, Action> = {
  CreateDisk: createDisk,
  AttachDisk: attachDisk,
  DetachDisk: detachDisk,
  DeleteDisk: deleteDisk,
  DescribeDisks: describeDisks,
  CreateSnapshot: createSnapshot,
  DeleteSnapshot: deleteSnapshot,
  DescribeSnapshots: describeSnapshots,
  CreateImage: createImage,
  DeleteImage: deleteImage,
  DescribeImages: describeImages,
  RunInstances: runInstances,
  DescribeInstances: describeInstances,
  DeleteInstances: deleteInstances,
};

/** Actions that take a ClientToken: a retry with the same token gets the first answer back. */
export const idempotent = new Set(['CreateDisk', 'CreateSnapshot', 'CreateImage', 'RunInstances']);
