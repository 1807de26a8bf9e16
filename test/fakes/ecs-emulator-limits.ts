/** ECS's documented limits on disks and instance families, as the emulator checks them. */
import { EcsApiError } from './ecs-emulator-state.js';

/**
 * Size range in GiB per disk category (and ESSD performance level), from the CreateDisk
 * reference: cloud 5–2,000; cloud_efficiency and cloud_ssd 20–32,768; cloud_essd PL0 1–65,536,
 * PL1 20–65,536, PL2 461–65,536, PL3 1,261–65,536; cloud_auto 1–65,536; cloud_essd_entry 10–32,768.
 */
const sizeRanges: Record<string, [number, number]> = {
  cloud: [5, 2000],
  cloud_efficiency: [20, 32_768],
  cloud_ssd: [20, 32_768],
  'cloud_essd:PL0': [1, 65_536],
  'cloud_essd:PL1': [20, 65_536],
  'cloud_essd:PL2': [461, 65_536],
  'cloud_essd:PL3': [1261, 65_536],
  cloud_auto: [1, 65_536],
  cloud_essd_entry: [10, 32_768],
};

export const diskCategories = [
  'cloud',
  'cloud_efficiency',
  'cloud_ssd',
  'cloud_essd',
  'cloud_auto',
  'cloud_essd_entry',
];

/** The performance level a disk gets: PL1 by default on cloud_essd, none on other categories. */
export function performanceLevel(
  category: string,
  given: string | undefined,
  param: string,
): string {
  if (category !== 'cloud_essd') return '';
  const pl = given ?? 'PL1';
  if (!['PL0', 'PL1', 'PL2', 'PL3'].includes(pl)) {
    throw new EcsApiError(
      400,
      'InvalidPerformanceLevel.Malformed',
      `The specified parameter "${param}" is not valid: ${pl} is not one of PL0, PL1, PL2, PL3.`,
    );
  }
  return pl;
}

/** Refuses a size outside the category's (and performance level's) documented range. */
export function checkDiskSize(
  size: number,
  category: string,
  pl: string,
  param: string,
  code = 'InvalidDiskSize.ValueNotSupported',
): void {
  const range = sizeRanges[pl ? `${category}:${pl}` : category];
  if (!range) return;
  const [min, max] = range;
  if (size < min || size > max) {
    throw new EcsApiError(
      400,
      code,
      `The specified parameter "${param}" is not valid: ${category}${pl ? ` ${pl}` : ''} takes ${min} to ${max} GiB, not ${size}.`,
    );
  }
}

/**
 * Categories an instance family's disks may have. Families of the 7th generation and later
 * (g7, c7, r7, g8i, c8y…) take ESSD-class disks only; older ones also take the basic categories.
 */
export function familyCategories(instanceType: string): string[] {
  const family = /^ecs\.([a-z]+)(\d+)/.exec(instanceType);
  const generation = family ? Number(family[2]) : 0;
  return generation >= 7
    ? ['cloud_essd', 'cloud_auto', 'cloud_essd_entry']
    : ['cloud', 'cloud_efficiency', 'cloud_ssd', 'cloud_essd'];
}

/** RunInstances' SystemDisk.Category when none is given: cloud_efficiency (I/O optimized families). */
export const DEFAULT_SYSTEM_CATEGORY = 'cloud_efficiency';
