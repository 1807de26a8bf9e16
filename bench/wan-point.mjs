#!/usr/bin/env node
// For each line `SINCE` (ms since the epoch) read on stdin, polls the gateway's status every 100 ms
// until the app's last committed point is from SINCE or later, and prints it as one JSON line:
// { since, id, time (the point's instant, ms), label, seenAt (when the gateway first showed it, ms) }.
// bench:wan runs it inside the agent's network namespace, connected before the changes start, so
// the figure is read from the gateway as soon as the point is there.
//   node bench/wan-point.mjs HOME HOST:PORT APP
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { gatewayClientAt } from '../dist/bench/bench-api.js';

const [home, address, app] = process.argv.slice(2);
if (!home || !address || !app) {
  process.stderr.write('usage: node bench/wan-point.mjs HOME HOST:PORT APP\n');
  process.exit(2);
}
const client = gatewayClientAt(home, address);
let lastError = '';
for await (const line of createInterface({ input: process.stdin })) {
  const since = Number(line.trim());
  if (!Number.isFinite(since)) {
    process.stderr.write(`wan-point: not a time in ms: ${JSON.stringify(line)}\n`);
    continue;
  }
  for (;;) {
    const at = Date.now();
    try {
      const [s] = await client.status(app);
      const p = s?.lastPoint;
      if (p && Date.parse(p.time) >= since) {
        const seenAt = Date.now();
        const point = { since, id: p.id, time: Date.parse(p.time), label: p.label, seenAt };
        process.stdout.write(`${JSON.stringify(point)}\n`);
        break;
      }
    } catch (err) {
      // Before the agent's first contact the gateway may not know the app yet: keep asking,
      // and say each new error once so a run that never gets there shows why.
      if (err.message !== lastError) process.stderr.write(`wan-point: ${err.message}\n`);
      lastError = err.message;
    }
    await sleep(Math.max(0, 100 - (Date.now() - at)));
  }
}
client.close();
