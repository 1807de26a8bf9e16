/**
 * Which chunk objects make up each segment in the bucket. A chunk's key carries the fencing token
 * of the lease its gateway held when it uploaded it, so two gateways never write one key: a
 * gateway that stalled past its lease and wakes up writes beside the new holder's chunks, never
 * over them. The catalog (the one write that is fenced by a compare-and-swap) names, for each
 * segment, which token's chunks make it up from which offset on (its runs); chunks of any other
 * token are not read, and the holder deletes them.
 *
 * Key layout: apps/<app>/segments/<segment, 8 digits>/<offset, 12 digits>[.<token>]. Token 0 (a
 * single gateway, and every bucket written before tokens) has no suffix, so older buckets read
 * as before. Point indexes carry the token too (apps/<app>/points/<id>[.<token>].idx): a holder
 * uploads every index at its first sync, so the catalog's indexes are those of its `fence`.
 */
import { z } from 'zod';
import { DrError } from '../../core/errors.js';
import type { ObjectBucket } from './object-bucket.js';

export const segmentName = (segment: number) => String(segment).padStart(8, '0');
const offsetName = (offset: number) => String(offset).padStart(12, '0');

export const chunkKey = (app: string, segment: number, offset: number, token = 0) =>
  `apps/${app}/segments/${segmentName(segment)}/${offsetName(offset)}${token > 0 ? `.${token}` : ''}`;

/** A point's index object: its writer's token in the key (none for token 0, as older buckets have). */
export const indexKey = (app: string, point: number, token = 0) =>
  `apps/${app}/points/${point}${token > 0 ? `.${token}` : ''}.idx`;

/** Every index object of the app in the bucket, with its point id and token. */
export async function indexesOf(
  bucket: ObjectBucket,
  app: string,
): Promise<Array<{ point: number; token: number; key: string }>> {
  const out: Array<{ point: number; token: number; key: string }> = [];
  for (const { key } of await bucket.list(`apps/${app}/points/`)) {
    const m = /\/points\/(\d+)(?:\.(\d+))?\.idx$/.exec(key);
    if (m) out.push({ point: Number(m[1]), token: Number(m[2] ?? 0), key });
  }
  return out;
}

export interface Chunk {
  segment: number;
  offset: number;
  size: number;
  /** The fencing token of the gateway that wrote it (0: unfenced). */
  token: number;
  key: string;
}

/** Every chunk object of the app in the bucket, by segment, offset and token. */
export async function chunksOf(bucket: ObjectBucket, app: string): Promise<Chunk[]> {
  const out: Chunk[] = [];
  for (const { key, size } of await bucket.list(`apps/${app}/segments/`)) {
    const m = /\/segments\/(\d{8})\/(\d{12})(?:\.(\d+))?$/.exec(key);
    if (m) {
      const [, segment, offset, token] = m;
      out.push({
        segment: Number(segment),
        offset: Number(offset),
        size,
        token: Number(token ?? 0),
        key,
      });
    }
  }
  return out.sort((a, b) => a.segment - b.segment || a.offset - b.offset || a.token - b.token);
}

/** From which offset on a token's chunks make up a segment, in offset order, the first from 0. */
export type Runs = Array<[offset: number, token: number]>;

/**
 * What a catalog in the bucket says of its chunks: the token of the gateway that wrote it, and
 * the runs of each segment it names. A segment it does not name (uploaded since) is the writer's:
 * its chunks of `fence` from offset 0.
 */
export interface ChunkChains {
  fence: number;
  runs: Map<number, Runs>;
}

const count = z.number().int().nonnegative();
const chainsSchema = z.object({
  fence: count,
  runs: z.record(z.string().regex(/^\d+$/), z.array(z.tuple([count, count])).min(1)),
});

/** The chains a catalog in the bucket names; one written before tokens: every chunk is token 0. */
export function chainsIn(catalog: Buffer, where: string): ChunkChains {
  let chunks: unknown;
  try {
    chunks = (JSON.parse(catalog.toString('utf8')) as { chunks?: unknown }).chunks;
  } catch (err) {
    throw badChains(where, 'is not JSON', err);
  }
  if (chunks === undefined) return { fence: 0, runs: new Map() };
  const parsed = chainsSchema.safeParse(chunks);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badChains(where, `has malformed chunks at ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return {
    fence: parsed.data.fence,
    runs: new Map(Object.entries(parsed.data.runs).map(([s, runs]) => [Number(s), runs as Runs])),
  };
}

function badChains(where: string, why: string, cause?: unknown): DrError {
  return new DrError(`catalog ${where} ${why}`, {
    code: 'store_corrupt',
    subject: where,
    remedy: 'restore the catalog object from the bucket versioning, or from a backup',
    cause,
  });
}

/** The local catalog's bytes with the chains added: what goes to the bucket. */
export function withChains(catalog: Buffer, chains: ChunkChains): Buffer {
  const json = JSON.parse(catalog.toString('utf8')) as Record<string, unknown>;
  const runs = Object.fromEntries([...chains.runs].sort(([a], [b]) => a - b));
  json.chunks = { fence: chains.fence, runs };
  return Buffer.from(`${JSON.stringify(json, null, 2)}\n`);
}

export interface Followed {
  /** Each segment's bytes on its chain from offset 0. */
  ends: Map<number, number>;
  /** The runs of each segment with bytes on its chain (unnamed segments: the fence's). */
  runs: Map<number, Runs>;
  /** The chunks on each segment's chain, in offset order. */
  on: Map<number, Chunk[]>;
  /** The rest: chunks of another token, or past a gap (an upload that failed or was cut short). */
  off: Chunk[];
}

/**
 * Follows each segment's chain: from offset 0, the chunk of the run's token at the chain's end,
 * up to where the next run starts, then that run's token. A chain stops at a gap or at a run
 * whose start it does not reach exactly.
 */
export function followChains(chunks: readonly Chunk[], chains: ChunkChains): Followed {
  const bySegment = new Map<number, Chunk[]>();
  for (const c of chunks) {
    const list = bySegment.get(c.segment) ?? [];
    list.push(c);
    bySegment.set(c.segment, list);
  }
  const out: Followed = { ends: new Map(), runs: new Map(), on: new Map(), off: [] };
  for (const [segment, list] of bySegment) {
    const runs = chains.runs.get(segment) ?? [[0, chains.fence]];
    const at = new Map(list.map((c) => [`${c.offset}.${c.token}`, c]));
    const on: Chunk[] = [];
    let end = 0;
    for (const [i, [from, token]] of runs.entries()) {
      if (from !== end) break;
      const limit = runs[i + 1]?.[0] ?? Number.POSITIVE_INFINITY;
      for (let c = at.get(`${end}.${token}`); c && end < limit; c = at.get(`${end}.${token}`)) {
        on.push(c);
        end += c.size;
      }
    }
    const kept = new Set(on);
    for (const c of list) if (!kept.has(c)) out.off.push(c);
    if (end === 0) continue;
    out.ends.set(segment, end);
    out.runs.set(
      segment,
      runs.filter(([from]) => from < end),
    );
    out.on.set(segment, on);
  }
  return out;
}

/**
 * Each segment's chain and the chunks off it, for chunks of token 0 only (one gateway, or a
 * bucket written before tokens): the chain from offset 0, the rest orphans.
 */
export function chainOf(chunks: readonly Chunk[]): { ends: Map<number, number>; orphans: Chunk[] } {
  const { ends, off } = followChains(chunks, { fence: 0, runs: new Map() });
  return { ends, orphans: off };
}

/**
 * `length` bytes at `offset` of a segment whose chain is `chunks`, by range GETs of the chunks
 * they cross (into `into` when given); undefined when the chain does not hold them all.
 */
export async function readChain(
  bucket: ObjectBucket,
  chunks: readonly Chunk[],
  offset: number,
  length: number,
  into?: Buffer,
): Promise<Buffer | undefined> {
  if (into && into.length < length)
    throw new RangeError(`a ${into.length}-byte buffer cannot take ${length}`);
  const parts: Buffer[] = [];
  let at = offset;
  const end = offset + length;
  for (const c of chunks) {
    if (at >= end) break;
    if (c.offset + c.size <= at) continue;
    if (c.offset > at) break; // a gap
    const take = Math.min(end, c.offset + c.size) - at;
    const body = await bucket.get(c.key, { offset: at - c.offset, length: take });
    if (!body || body.length !== take) break;
    parts.push(body);
    at += take;
  }
  if (at < end) return undefined;
  if (!into) return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
  let o = 0;
  for (const p of parts) o += p.copy(into, o);
  return into.subarray(0, length);
}
