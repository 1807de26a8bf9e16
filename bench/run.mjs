#!/usr/bin/env node
// `npm run bench`: every benchmark in turn.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const benches = ['replication.mjs', 'rpo.mjs', 'rto.mjs', 'status.mjs', 'chat.mjs', 'up.mjs'];
let failed = 0;
for (const b of benches) {
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(new URL(b, import.meta.url)), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
