// bench:rpo --store s3: the lag as the bucket's catalog shows it, and the uploads' step times.
import { s3ClientFor } from './lib.mjs';
import { pct } from './rpo-report.mjs';

/**
 * The newest consistent point's age in the bucket's catalog: what a gateway on a new machine
 * would serve. The agent's changes never stop under fio, so no "unchanged since" applies.
 * The client's teardown goes onto `undo`.
 */
export async function bucketLag(env, bucket, undo) {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const client = await s3ClientFor(env);
  undo.push(() => client.destroy());
  return async (prefix) => {
    try {
      const out = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/apps/bench/catalog.json` }),
      );
      const catalog = JSON.parse(await out.Body.transformToString());
      const last = catalog.points.findLast((p) => p.label !== 'fuzzy');
      return last ? Math.max(0, (Date.now() - Date.parse(last.time)) / 1000) : undefined;
    } catch (err) {
      if (err.$metadata?.httpStatusCode === 404) return undefined; // no point uploaded yet
      throw err;
    }
  };
}

/** p50/p99 of each step of the commits' uploads (gateway log lines 'point uploaded to the bucket'). */
export function uploadSummary(lines) {
  const keys = ['uploadMs', 'segmentMs', 'segmentBytes', 'indexMs', 'indexBytes', 'catalogMs'];
  return {
    commits: lines.length,
    ...Object.fromEntries(
      keys.map((k) => {
        const xs = lines.map((l) => l[k]).filter((x) => typeof x === 'number');
        return [k, { p50: pct(xs, 50), p99: pct(xs, 99) }];
      }),
    ),
  };
}
