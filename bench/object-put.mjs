#!/usr/bin/env node
// Benchmark: how fast the object store's bucket (Ceph RGW on this machine, scripts/ceph-s3.sh) takes
// segment bytes, by object size and by how many uploads run at once, through the gateway's own
// ObjectBucket. Tells whether a commit's upload is bound by one request at a time or by the endpoint.
//   node bench/object-put.mjs [--mib 128] [--json]   (npm run bench:object-put)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ObjectBucket } from '../dist/replicator/gateway/object-bucket.js';
import { say, startCephBucket } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    mib: { type: 'string', default: '128' },
    json: { type: 'boolean', default: false },
  },
});
const TOTAL = Number(args.mib) * 2 ** 20;
if (!(TOTAL > 0)) {
  say(`bench:object-put: --mib ${args.mib} is not a positive number of MiB`);
  process.exit(2);
}
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-bench-put-'));
const MiB = 2 ** 20;
/** [label, object size, uploads at once, part size (multipart above it)] */
const cases = [
  ['1 MiB objects, one at a time', MiB, 1, 16 * MiB],
  ['4 MiB objects, one at a time', 4 * MiB, 1, 16 * MiB],
  ['16 MiB objects, one at a time', 16 * MiB, 1, 16 * MiB],
  ['4 MiB objects, 4 at once', 4 * MiB, 4, 16 * MiB],
  ['8 MiB objects, 4 at once', 8 * MiB, 4, 16 * MiB],
  ['16 MiB objects, 4 at once', 16 * MiB, 4, 16 * MiB],
  ['64 MiB multipart, 16 MiB parts', 64 * MiB, 1, 16 * MiB],
  ['64 MiB multipart, 8 MiB parts', 64 * MiB, 1, 8 * MiB],
];

let ceph;
const results = [];
try {
  say(`bench: starting Ceph under ${join(work, 'ceph')}`);
  ceph = await startCephBucket(join(work, 'ceph'), 'put');
  Object.assign(process.env, ceph.env);
  const data = randomBytes(64 * MiB);
  for (const [label, size, atOnce, partBytes] of cases) {
    const bucket = new ObjectBucket({
      bucket: 'put',
      prefix: `case-${results.length}`,
      endpoint: ceph.env.AWS_ENDPOINT_URL_S3,
      partBytes,
    });
    const n = Math.ceil(TOTAL / size);
    let next = 0;
    const t = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: atOnce }, async () => {
        while (next < n) {
          const i = next++;
          await bucket.put(`o/${i}`, data.subarray(0, size));
        }
      }),
    );
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    bucket.close();
    results.push({ label, mibPerS: (n * size) / MiB / s });
    say(`${label}: ${results.at(-1).mibPerS.toFixed(1)} MiB/s`);
  }
} finally {
  ceph?.down();
  rmSync(work, { recursive: true, force: true });
}
const base = results[1].mibPerS;
if (args.json)
  console.log(JSON.stringify({ date: new Date().toISOString(), loadavg: loadavg(), results }));
else {
  console.log(
    `PUT rate into Ceph RGW on 127.0.0.1 (one OSD), ${args.mib} MiB a case, load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  for (const r of results)
    console.log(
      `${r.label.padEnd(34)} ${r.mibPerS.toFixed(1).padStart(7)} MiB/s  ${(r.mibPerS / base).toFixed(2)}x of 4 MiB one at a time`,
    );
}
