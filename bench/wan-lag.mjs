#!/usr/bin/env node
// Prints an app's lag (seconds behind, from the gateway's status) as one JSON line a second until
// stdin closes. bench:wan runs it inside the agent's network namespace, where the gateway is reachable.
//   node bench/wan-lag.mjs HOME HOST:PORT APP
import { setTimeout as sleep } from 'node:timers/promises';
import { gatewayClientAt, lagSeconds } from '../dist/bench/bench-api.js';

const [home, address, app] = process.argv.slice(2);
if (!home || !address || !app) {
  process.stderr.write('usage: node bench/wan-lag.mjs HOME HOST:PORT APP\n');
  process.exit(2);
}
const client = gatewayClientAt(home, address);
let open = true;
process.stdin.on('close', () => {
  open = false;
});
process.stdin.resume();
while (open) {
  const at = Date.now();
  try {
    const lag = await lagSeconds(client, app);
    process.stdout.write(`${JSON.stringify({ at, lag: lag ?? null })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ at, error: err.message })}\n`);
  }
  await sleep(Math.max(0, 1000 - (Date.now() - at)));
}
client.close();
