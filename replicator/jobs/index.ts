/** Recovery jobs: the contract the engine and `dr` build on, the client that queues, the worker that runs. */

export { followOperation, parseEvent } from './operation-events.js';
export { type Enqueued, newOpId, RecoveryClient } from './recovery-client.js';
export * from './recovery-contract.js';
export type { RecoveryDeps } from './recovery-deps.js';
export { createRecoveryWorker, sweepLeftovers } from './recovery-worker.js';
