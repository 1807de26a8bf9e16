#!/usr/bin/env node
// The `dr` command: runs the compiled CLI. `npm ci` builds it (the `prepare` script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'dr: the compiled CLI (dist/) is missing. To resolve, run `npm run build` in the Lifeboat checkout.\n',
  );
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv);
// The command is over: a connection still retrying an unreachable Redis (its reconnect timer)
// must not keep the process alive. Unref'd, so a process with nothing left exits at once.
setTimeout(() => process.exit(), 1000).unref();
