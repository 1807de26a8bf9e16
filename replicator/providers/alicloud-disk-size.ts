/** The size in GiB an ECS disk of a category (and ESSD performance level) needs to hold a volume. */
import { DrError } from '../../core/errors.js';

const GiB = 1024 ** 3;

/** Smallest and largest sizes ECS takes per category (and cloud_essd level), in GiB. */
const ranges: Record<string, [number, number]> = {
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

/** The performance level a cloud_essd disk is made with (PL1 unless set); '' for other categories. */
export function essdLevel(category: string, level: string | undefined): string {
  return category === 'cloud_essd' ? (level ?? 'PL1') : '';
}

/**
 * Whole GiB that hold `bytes`, raised to the category's minimum: a 5 MiB volume on cloud_essd
 * PL1 gets a 20 GiB disk, as ECS refuses anything smaller. A volume past the maximum is refused
 * here, before anything is created.
 */
export function diskSizeGiB(bytes: number, category: string, level: string): number {
  const range = ranges[level ? `${category}:${level}` : category];
  if (!range) {
    throw new DrError(`unknown ECS disk category ${category}${level ? ` ${level}` : ''}`, {
      code: 'bad_request',
      subject: category,
      remedy: `use one of ${Object.keys(ranges).join(', ')}`,
    });
  }
  const [min, max] = range;
  const size = Math.max(min, Math.ceil(bytes / GiB));
  if (size > max) {
    throw new DrError(
      `a volume of ${Math.ceil(bytes / GiB)} GiB does not fit an ECS ${category} disk (at most ${max} GiB)`,
      { code: 'bad_request', subject: category, remedy: 'choose a disk category that holds it' },
    );
  }
  return size;
}
