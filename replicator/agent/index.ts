/** The replication agent (runs on the protected server): capture changed blocks, encrypt, ship, commit signed points. */

// What lives here, one part a file:
// - replication-agent.ts     the agent: a short composition of the parts below, and its run loop
// - agent-settings.ts        settings resolved once from dr.yaml and the command line (one default each)
// - volume-set.ts            the app's volumes: read handles, machine-wide device locks, trackers, quiescer
// - volume-tracking.ts       how one volume's changes are found (block tracing, else scanning)
//                            and, traced, what its block size costs the writes (write-window.ts: the last 10 min)
// - gateway-session.ts       the session: one request built once, reopen after a gateway restart, heartbeats, clock offset
// - resume-reconciliation.ts MAC state from the agent's files or the gateway's, crash intents replayed
// - point-chain.ts           the signed chain of points and the agent's own ledger (point-ledger.ts)
// - cycle-runner.ts          one cycle: pre-copy rounds, the cut (cut.ts), one point or none; ships through a Shipper
// - shipper.ts, batch-shipper.ts  the Shipper seam, and the batch shipper (sealed, sequenced, a few in flight)
//                            (a block repeating one the gateway holds goes as a reference: repeat-index.ts)
// - batch-sequence.ts        batch numbers; mac-state.ts the MACs the DR site holds, with the intent log
// - protection-wait.ts       the one wait on a paused or failed-over app, and the refusal each state means
// - agent-lock.ts, device-lock.ts, retry.ts, absent-macs.ts, agent-status.ts  the small pieces they share

export { type AgentOverrides, type AgentSettings, resolveAgentSettings } from './agent-settings.js';
export type { ResyncReport, SyncProgress } from './cut.js';
export type { CycleReport } from './cycle-runner.js';
export { type AgentObserver, type AgentOptions, ReplicationAgent } from './replication-agent.js';
