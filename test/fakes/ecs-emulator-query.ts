import {
  EcsApiError,
  type EcsState,
  type EmuDisk,
  type EmuInstance,
  type Tags,
} from './ecs-emulator-state.js';

/** The flattened OpenAPI parameters of one request, with ECS's checks on them. */
export class Query {
  constructor(readonly params: URLSearchParams) {}

  get(name: string): string | undefined {
    const v = this.params.get(name);
    return v === null || v === '' ? undefined : v;
  }

  /** A mandatory parameter: missing gives ECS's MissingParameter error. */
  required(name: string): string {
    const v = this.get(name);
    if (v === undefined) {
      throw new EcsApiError(
        400,
        `MissingParameter`,
        `The input parameter "${name}" that is mandatory for processing this request is not supplied.`,
      );
    }
    return v;
  }

  int(name: string, { min, max, fallback }: { min: number; max: number; fallback?: number }) {
    const raw = this.get(name);
    if (raw === undefined) {
      if (fallback !== undefined) return fallback;
      return Number(this.required(name));
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new EcsApiError(
        400,
        'InvalidParameter',
        `The specified parameter "${name}" is not valid: ${raw} is not an integer from ${min} to ${max}.`,
      );
    }
    return n;
  }

  bool(name: string): boolean {
    const v = this.get(name);
    if (v === undefined) return false;
    if (v !== 'true' && v !== 'false') {
      throw new EcsApiError(
        400,
        'InvalidParameter',
        `The specified parameter "${name}" is not valid.`,
      );
    }
    return v === 'true';
  }

  /** A list given as a JSON array string (`DiskIds`, `InstanceIds`, `SnapshotIds`). */
  jsonList(name: string): string[] | undefined {
    const raw = this.get(name);
    if (raw === undefined) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined; // reported just below as malformed, like ECS does
    }
    if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
      throw new EcsApiError(
        400,
        `Invalid${name}.Malformed`,
        `The specified parameter "${name}" is not a JSON array of strings.`,
      );
    }
    if (parsed.length > 100) {
      throw new EcsApiError(400, `Invalid${name}.Malformed`, `"${name}" holds more than 100 ids.`);
    }
    return parsed;
  }

  /** A repeated list (`InstanceId.1`, `InstanceId.2`, …). */
  repeated(name: string): string[] {
    const out: string[] = [];
    for (let n = 1; n <= 100; n++) {
      const v = this.get(`${name}.${n}`);
      if (v !== undefined) out.push(v);
    }
    return out;
  }

  /** `Tag.N.Key` / `Tag.N.Value`, N from 1 to 20. A key alone (no value) matches any value in filters. */
  tags(): [string, string | undefined][] {
    const out: [string, string | undefined][] = [];
    for (let n = 1; n <= 20; n++) {
      const key = this.get(`Tag.${n}.Key`);
      const value = this.params.get(`Tag.${n}.Value`) ?? undefined;
      if (key === undefined) {
        if (value !== undefined) {
          throw new EcsApiError(400, 'InvalidTagKey.Malformed', `Tag.${n}.Key is missing.`);
        }
        continue;
      }
      if (key.startsWith('aliyun') || key.startsWith('acs:') || key.length > 128) {
        throw new EcsApiError(400, 'InvalidTagKey.Malformed', `The tag key "${key}" is not valid.`);
      }
      out.push([key, value]);
    }
    return out;
  }

  /** Tags to set on a new resource. */
  newTags(): Tags {
    return new Map(this.tags().map(([k, v]) => [k, v ?? '']));
  }

  /** The paging of a Describe call: PageNumber from 1, PageSize up to 100 (10 by default). */
  page(): { number: number; size: number } {
    return {
      number: this.int('PageNumber', { min: 1, max: 1_000_000, fallback: 1 }),
      size: this.int('PageSize', { min: 1, max: 100, fallback: 10 }),
    };
  }
}

export function matchesTags(tags: Tags, filter: [string, string | undefined][]): boolean {
  return filter.every(([k, v]) => tags.has(k) && (v === undefined || tags.get(k) === v));
}

export function tagList(tags: Tags): { Tag: { TagKey: string; TagValue: string }[] } {
  return { Tag: [...tags].map(([TagKey, TagValue]) => ({ TagKey, TagValue })) };
}

export function paged<T>(
  items: T[],
  q: Query,
): { items: T[]; total: number; number: number; size: number } {
  const { number, size } = q.page();
  return {
    items: items.slice((number - 1) * size, number * size),
    total: items.length,
    number,
    size,
  };
}

export function notFound(kind: string, id: string): EcsApiError {
  return new EcsApiError(
    404,
    `Invalid${kind}.NotFound`,
    `The specified ${kind} "${id}" does not exist.`,
  );
}

export type Body = Record<string, unknown>;
export type Action = (s: EcsState, q: Query) => Promise<Body> | Body;

export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

export function checkRegion(s: EcsState, q: Query): void {
  const region = q.required('RegionId');
  if (region !== s.regionId) {
    throw new EcsApiError(
      404,
      'InvalidRegionId.NotFound',
      `The region "${region}" does not exist.`,
    );
  }
}

export function disk(s: EcsState, id: string): EmuDisk {
  const d = s.disks.get(id);
  if (!d) throw notFound('DiskId', id);
  return d;
}

export function instance(s: EcsState, id: string): EmuInstance {
  const i = s.instances.get(id);
  if (!i) throw notFound('InstanceId', id);
  return i;
}

export function wrongStatus(kind: string, what: string, status: string): EcsApiError {
  return new EcsApiError(
    403,
    `Incorrect${kind}Status`,
    `The current status of the ${what} (${status}) does not support this operation.`,
  );
}
