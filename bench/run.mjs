#!/usr/bin/env node
// `npm run bench`: every benchmark in turn, each between two lines of the load average (the
// figures mean little without it). Arguments (e.g. --smoke, --json) go to every benchmark.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const benches = [
  'replication.mjs',
  'scale.mjs',
  'rpo.mjs',
  'rto.mjs',
  'status.mjs',
  'chat.mjs',
  'policy.mjs',
  'up.mjs',
  'restore.mjs',
  'wan.mjs',
  'zstd-dictionary.mjs',
  'write-tally.mjs',
];
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
let failed = 0;
for (const b of benches) {
  process.stderr.write(`== ${b} ${new Date().toISOString()} load average ${load()}\n`);
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(new URL(b, import.meta.url)), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.stderr.write(
    `== ${b} ${r.status === 0 ? 'done' : r.status === 2 ? 'skipped (see above)' : `failed (exit ${r.status})`} ${new Date().toISOString()} load average ${load()}\n`,
  );
  if (r.status !== 0 && r.status !== 2) failed++;
}
process.exit(failed ? 1 : 0);
