import {
  describeInvocationResults,
  describeInvocations,
  runCommand,
} from './ecs-emulator-assistant.js';
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
import { createImage, deleteImage, describeImages } from './ecs-emulator-images.js';
import {
  deleteInstance,
  deleteInstances,
  describeInstances,
  runInstances,
  startInstance,
  stopInstance,
} from './ecs-emulator-instances.js';
import type { Action } from './ecs-emulator-query.js';
import { EcsApiError } from './ecs-emulator-state.js';

/** Regions ECS lists besides the emulated one (which alone holds resources). */
const otherRegions: [string, string][] = [
  ['cn-hangzhou', 'China (Hangzhou)'],
  ['cn-shanghai', 'China (Shanghai)'],
  ['cn-beijing', 'China (Beijing)'],
  ['cn-shenzhen', 'China (Shenzhen)'],
  ['ap-southeast-1', 'Singapore'],
  ['eu-central-1', 'Germany (Frankfurt)'],
];

/** DescribeRegions: RegionId is optional here; the answer lists every region with its endpoint. */
const describeRegions: Action = (s, q) => {
  const kind = q.get('InstanceChargeType') ?? 'PostPaid';
  if (!['PrePaid', 'PostPaid', 'SpotWithPriceLimit', 'SpotAsPriceGo'].includes(kind)) {
    throw new EcsApiError(
      400,
      'InvalidInstanceChargeType.NotFound',
      `The InstanceChargeType ${kind} does not exist.`,
    );
  }
  const names = new Map(otherRegions);
  if (!names.has(s.regionId)) names.set(s.regionId, s.regionId);
  return {
    Regions: {
      Region: [...names].map(([RegionId, LocalName]) => ({
        RegionId,
        LocalName,
        RegionEndpoint: `ecs.${RegionId}.aliyuncs.com`,
        Status: 'available',
      })),
    },
  };
};

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
  DeleteInstance: deleteInstance,
  StopInstance: stopInstance,
  StartInstance: startInstance,
  DescribeRegions: describeRegions,
  RunCommand: runCommand,
  DescribeInvocations: describeInvocations,
  DescribeInvocationResults: describeInvocationResults,
};

/** Actions that take a ClientToken: a retry with the same token gets the first answer back. */
export const idempotent = new Set([
  'CreateDisk',
  'CreateSnapshot',
  'CreateImage',
  'RunInstances',
  'RunCommand',
]);
