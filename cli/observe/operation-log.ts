import type { Redis } from 'ioredis';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import {
  type OperationEvent,
  type OperationResult,
  type Rto,
  recoveryKeys,
} from '../../replicator/jobs/recovery-contract.js';

/** One operation as the events stream tells it. */
export interface OperationView {
  opId: string;
  app: string;
  job: OperationEvent['job'];
  state: 'running' | 'succeeded' | 'failed';
  /** The last step reached, while running. */
  step?: string;
  startedAt: number;
  finishedAt?: number;
  /** Drill and failover: the split RTO. */
  rto?: Rto;
  point?: number;
  dataAgeSeconds?: number;
  error?: string;
  /** A drill whose server the cleanup job has removed. */
  cleanedUp?: boolean;
  /** Each step as it was first reached, oldest first (ms since epoch). */
  steps: { step: string; at: number }[];
  /** Drill and failover: whether the recovered server passed its health check. */
  healthy?: boolean;
  /** Drill and failover: the recovered server (provider and id, and where it answers). */
  server?: { provider: string; id: string; endpoint?: string };
  /** Failback: the failover it undid. */
  failoverOpId?: string;
}

const isOperationResult = (r: OperationEvent['result']): r is OperationResult =>
  r !== undefined && 'rto' in r;

/** Folds events (oldest first) into operations, newest first; cleanup jobs mark their drill. */
export function foldOperations(events: OperationEvent[]): OperationView[] {
  const ops = new Map<string, OperationView>();
  for (const e of events) {
    if (e.job === 'cleanup') {
      const op = ops.get(e.opId);
      if (op && e.type === 'finished' && !e.error) op.cleanedUp = true;
      continue;
    }
    let op = ops.get(e.opId);
    if (!op) {
      op = { opId: e.opId, app: e.app, job: e.job, state: 'running', startedAt: e.time, steps: [] };
      ops.set(e.opId, op);
    }
    if (e.type === 'step' && e.step !== undefined) {
      op.step = e.step;
      // Progress within a step repeats it: the log keeps when each step was first reached.
      if (op.steps[op.steps.length - 1]?.step !== e.step && op.steps.length < 50)
        op.steps.push({ step: e.step, at: e.time });
    }
    if (e.type === 'finished') {
      op.finishedAt = e.time;
      delete op.step;
      if (e.error) {
        op.state = 'failed';
        op.error = e.error.message;
      } else {
        op.state = 'succeeded';
        if (isOperationResult(e.result)) {
          op.rto = e.result.rto;
          op.point = e.result.point;
          op.dataAgeSeconds = e.result.dataAgeSeconds;
          if (e.result.health) op.healthy = e.result.health.ok;
          const srv = e.result.server;
          if (srv?.id)
            op.server = {
              provider: String(srv.provider ?? ''),
              id: srv.id,
              ...(srv.endpoint ? { endpoint: srv.endpoint } : {}),
            };
        } else if (e.result && 'failoverOpId' in e.result) {
          op.failoverOpId = e.result.failoverOpId;
        }
      }
    }
  }
  // Newest first; in the same millisecond the later one in the stream comes first.
  return [...ops.values()]
    .map((op, i) => ({ op, i }))
    .sort((a, b) => b.op.startedAt - a.op.startedAt || b.i - a.i)
    .map((x) => x.op);
}

/** The newest `count` events of the stream, oldest first. */
export async function readRecentEvents(
  redis: Redis,
  prefix: string,
  count = 2000,
): Promise<OperationEvent[]> {
  const entries = await redis.xrevrange(recoveryKeys(prefix).events, '+', '-', 'COUNT', count);
  const out: OperationEvent[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = parseEvent((entries[i] as [string, string[]])[1]);
    if (e) out.push(e);
  }
  return out;
}
