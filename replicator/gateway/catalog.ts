/** An app's catalog at the gateway (catalog.json): store id, volumes with wrapped keys, points, committed sequence. */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { type ConsistencyLabel, type PointInfo, pointInfoSchema } from '../transport/protocol.js';

export type { PointInfo, PointVolumeInfo } from '../transport/protocol.js';
export type PointLabel = ConsistencyLabel;

/** A volume as the gateway knows it. `wrappedKey` is the data key wrapped by the agent's KEK. */
export interface VolumeMeta {
  name: string;
  /** Stable u16 the records carry; assigned in order of first registration. */
  id: number;
  blockSize: number;
  size: number;
  wrappedKey: Buffer;
}

/** A volume as the agent proposes it when a session opens. */
export interface VolumeProposal {
  name: string;
  blockSize: number;
  size: number;
  wrappedKey: Buffer;
}

export interface Catalog {
  version: 1;
  app: string;
  /** Random hex naming this replica; an agent seeing another id knows the store was replaced. */
  storeId: string;
  committedSeq: number;
  nextPointId: number;
  /** Recovery scans the segment log from here; every batch still pending lies after it. */
  tail: { segment: number; offset: number };
  volumes: VolumeMeta[];
  points: PointInfo[];
}

const count = z.number().int().nonnegative();
const schema = z.object({
  version: z.literal(1),
  app: z.string(),
  storeId: z.string().regex(/^[0-9a-f]+$/),
  committedSeq: count,
  nextPointId: count,
  tail: z.object({ segment: count, offset: count }),
  volumes: z.array(
    z.object({
      name: z.string(),
      id: count.max(0xffff),
      blockSize: count,
      size: count,
      wrappedKey: z.base64(),
    }),
  ),
  // Kept as stored (with its signed record): readers check it against the listing and its signature.
  points: z.array(pointInfoSchema),
});

export function newCatalog(app: string): Catalog {
  return {
    version: 1,
    app,
    storeId: randomBytes(16).toString('hex'),
    committedSeq: 0,
    nextPointId: 1,
    tail: { segment: 1, offset: 0 },
    volumes: [],
    points: [],
  };
}

/** A point by id (or the latest); unknown ones are refused with the way to list them. */
export function findPoint(
  app: string,
  points: readonly PointInfo[],
  ref: number | 'latest',
): PointInfo {
  const p = ref === 'latest' ? points.at(-1) : points.find((x) => x.id === ref);
  if (!p) {
    throw new DrError(`app ${app} has no recovery point ${ref}`, {
      code: 'point_unknown',
      subject: `${app}/${ref}`,
      remedy: `list points with \`dr points ${app}\``,
    });
  }
  return p;
}

function corruptCatalog(path: string, why: string, cause?: unknown): DrError {
  return new DrError(`gateway catalog ${path} ${why}`, {
    code: 'store_corrupt',
    subject: path,
    remedy: 'restore the file from a backup of the gateway store',
    cause,
  });
}

export async function readCatalog(path: string): Promise<Catalog> {
  const bad = (why: string, cause?: unknown) => corruptCatalog(path, why, cause);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw bad(`cannot be read (${systemCode(err) ?? errorMessage(err)})`, err);
  }
  return parseCatalog(text, path);
}

/** Parses a catalog's text; `path` names it in errors (a file, or an object in a bucket). */
export function parseCatalog(text: string, path: string): Catalog {
  const bad = (why: string, cause?: unknown) => corruptCatalog(path, why, cause);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw bad('is not JSON', err);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw bad(
      `is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const c = parsed.data;
  return {
    ...c,
    volumes: c.volumes.map((v) => ({ ...v, wrappedKey: Buffer.from(v.wrappedKey, 'base64') })),
    points: c.points.map(({ record, sig, ...p }) => ({
      ...p,
      ...(record !== undefined ? { record } : {}),
      ...(sig !== undefined ? { sig } : {}),
    })),
  };
}

/** Writes the catalog atomically: after a crash it is the old catalog or the new one. */
export async function writeCatalog(path: string, catalog: Catalog): Promise<void> {
  const json = {
    ...catalog,
    volumes: catalog.volumes.map((v) => ({ ...v, wrappedKey: v.wrappedKey.toString('base64') })),
  };
  await writeFileAtomic(path, `${JSON.stringify(json, null, 2)}\n`, 0o600);
}

/**
 * The volume list after an agent's proposals: a known volume keeps its id and
 * wrapped key (its size follows the proposal); a new one gets the next id.
 */
export function mergeVolumes(
  app: string,
  current: readonly VolumeMeta[],
  proposals: readonly VolumeProposal[],
): VolumeMeta[] {
  const refuse = (name: string, why: string, remedy: string) =>
    new DrError(`volume ${app}/${name} ${why}`, {
      code: 'bad_request',
      subject: `${app}/${name}`,
      remedy,
    });
  const volumes = current.map((v) => ({ ...v }));
  for (const p of proposals) {
    const valid =
      typeof p.name === 'string' &&
      p.name !== '' &&
      Number.isSafeInteger(p.blockSize) &&
      p.blockSize > 0 &&
      Number.isSafeInteger(p.size) &&
      p.size >= 0 &&
      Buffer.isBuffer(p.wrappedKey) &&
      p.wrappedKey.length > 0;
    if (!valid) {
      throw refuse(
        String(p.name),
        'is proposed without a block size, size or wrapped key',
        'upgrade the agent to match the gateway',
      );
    }
    const held = volumes.find((v) => v.name === p.name);
    if (held && held.blockSize !== p.blockSize) {
      throw refuse(
        p.name,
        `is stored with ${held.blockSize}-byte blocks, the agent proposes ${p.blockSize}`,
        'keep the block size, or protect the volume under a new name',
      );
    }
    if (held) held.size = p.size;
    else {
      const id = volumes.reduce((max, v) => Math.max(max, v.id), 0) + 1;
      if (id > 0xffff)
        throw refuse(
          p.name,
          'is one volume too many (65535 at most)',
          'protect fewer volumes per app',
        );
      volumes.push({
        name: p.name,
        id,
        blockSize: p.blockSize,
        size: p.size,
        wrappedKey: Buffer.from(p.wrappedKey),
      });
    }
  }
  return volumes;
}

/** Whether two volume lists are the same, key bytes included (nothing to write then). */
export function sameVolumes(a: readonly VolumeMeta[], b: readonly VolumeMeta[]): boolean {
  return (
    a.length === b.length &&
    a.every((v, i) => {
      const w = b[i];
      return (
        w !== undefined &&
        v.name === w.name &&
        v.id === w.id &&
        v.size === w.size &&
        v.blockSize === w.blockSize &&
        v.wrappedKey.equals(w.wrappedKey)
      );
    })
  );
}
