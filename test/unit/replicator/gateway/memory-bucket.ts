/** A bucket in memory for the object store's unit tests: every put, get and delete recorded in order. */
import type { ObjectBucket } from '../../../../replicator/gateway/object-bucket.js';

type Range = { offset: number; length: number };
const ranged = (body: Buffer | undefined, r?: Range) =>
  body && r ? body.subarray(r.offset, r.offset + r.length) : body;

/** A bucket in memory that records every call in order; ETags are a version counter. */
export function memoryBucket() {
  const objects = new Map<string, Buffer>();
  const etags = new Map<string, string>();
  let version = 0;
  const calls: string[] = [];
  /** Every GET's key and range, apart from `calls` (which the order tests read). */
  const gets: Array<{ key: string; bytes: number }> = [];
  const store = (key: string, body: Buffer) => {
    objects.set(key, Buffer.from(body));
    etags.set(key, String(++version));
    return etags.get(key) as string;
  };
  const bucket = {
    url: 's3://memory',
    put: async (key: string, body: Buffer) => {
      calls.push(`put ${key}`);
      store(key, body);
    },
    putIf: async (key: string, body: Buffer, expected: string | undefined) => {
      calls.push(`put ${key}`);
      if (etags.get(key) !== expected) return 'conflict';
      return store(key, body);
    },
    get: async (key: string, range?: Range) => {
      const body = ranged(objects.get(key), range);
      gets.push({ key, bytes: body?.length ?? 0 });
      return body;
    },
    getTagged: async (key: string, range?: Range) => {
      const body = ranged(objects.get(key), range);
      gets.push({ key, bytes: body?.length ?? 0 });
      return body ? { body, etag: etags.get(key) as string } : undefined;
    },
    list: async (prefix: string) =>
      [...objects]
        .filter(([k]) => k.startsWith(prefix))
        .map(([key, body]) => ({ key, size: body.length }))
        .sort((a, b) => a.key.localeCompare(b.key)),
    delete: async (keys: readonly string[]) => {
      for (const k of keys) {
        calls.push(`delete ${k}`);
        objects.delete(k);
      }
    },
    abortLeftovers: async () => 0, // no multipart uploads here: every object is one put
    check: async () => undefined,
    close: () => undefined,
  };
  return { bucket: bucket as unknown as ObjectBucket, objects, calls, gets };
}
