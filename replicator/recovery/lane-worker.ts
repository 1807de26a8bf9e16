// A worker thread running lanes of a point read (see lane-pool.ts): its own TLS, decryption and writes.
import { parentPort, workerData } from 'node:worker_threads';
import { NonceSource, type VolumeKeys } from '../crypto/volume-key.js';
import { GatewayClient } from '../transport/gateway-client.js';
import type { FromLaneWorker, LaneWorkerData, ToLaneWorker } from './lane-pool.js';
import { errorData, runLane } from './range-lane.js';

const port = parentPort;
if (!port) throw new Error('lane-worker.js runs as a worker thread');
const d = workerData as LaneWorkerData;
const keys: VolumeKeys = {
  enc: Buffer.from(d.keys.enc),
  mac: Buffer.from(d.keys.mac),
  zeroMac: Buffer.from(d.keys.zeroMac),
  blockSize: d.keys.blockSize,
  nonces: new NonceSource(), // never used: this thread only opens records
};
const client = new GatewayClient(d.client);
const stop = new AbortController();
const waiting = new Map<number, (r: { from: number; to: number } | undefined) => void>();
port.on('message', (m: ToLaneWorker) => {
  if (m.t === 'range') waiting.get(m.lane)?.(m.range ?? undefined);
  else stop.abort();
});

const lanes = Array.from({ length: d.lanes }, (_, lane) =>
  runLane(
    client,
    keys,
    d.job,
    (done) =>
      new Promise((resolve) => {
        waiting.set(lane, resolve);
        port.postMessage({ t: 'next', lane, done } satisfies FromLaneWorker);
      }),
    (r) => port.postMessage({ t: 'report', ...r }),
    { collect: d.collect, signal: stop.signal },
  ).catch((err: unknown) => {
    // The first failure stops this thread's other lanes; the main thread stops the other threads.
    if (!stop.signal.aborted) port.postMessage({ t: 'failed', error: errorData(err) });
    stop.abort();
  }),
);
await Promise.all(lanes);
client.close();
port.postMessage({ t: 'done' });
port.unref(); // the thread ends once its last message is out
