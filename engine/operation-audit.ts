// Writes each operation's start and result into the audit log, from wherever an engine or worker runs.
import type { Redis } from 'ioredis';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { settleWithin } from '../core/settle-within.js';
import { parseEvent } from '../replicator/jobs/operation-events.js';
import { type OperationEvent, recoveryKeys } from '../replicator/jobs/recovery-contract.js';
import type { AuditEntry, AuditLog } from './audit-log.js';

/** The consumer group every engine and worker shares: each event is audited by one of them. */
export const AUDIT_GROUP = 'lifeboat-audit';

/** How long an event is remembered as audited (a redelivery after a crash is then not audited twice). */
const ONCE_TTL_SECONDS = 30 * 86_400;

/**
 * The audit entry an operation event makes: `job` when it starts or resumes, `result` when it
 * finishes; steps are not audited. Written at most once per event (keyed by its stream id), so
 * an engine and a worker that both see it, or a redelivery, leave one entry.
 */
export function auditOperationEvent(
  audit: AuditLog,
  eventId: string,
  e: OperationEvent,
): Promise<AuditEntry | undefined> {
  const once = { key: `event:${eventId}`, ttlSeconds: ONCE_TTL_SECONDS };
  const base = { opId: e.opId, app: e.app, job: e.job };
  if (e.type === 'started') {
    const state = e.step === 'resumed' ? 'resumed' : 'started';
    return audit.appendOnce(once, 'job', { ...base, state });
  }
  if (e.type !== 'finished') return Promise.resolve(undefined);
  return audit.appendOnce(
    once,
    'result',
    e.error ? { ...base, ok: false, error: e.error } : { ...base, ok: true, result: e.result },
  );
}

export interface OperationAuditOptions {
  /** A connection of its own: XREADGROUP blocks it. */
  conn: Redis;
  audit: AuditLog;
  prefix: string;
  /** Names this process in the group. */
  consumer: string;
  log: Logger;
  /** How long an event read by a consumer that died stays with it before another takes it. */
  claimAfterMs?: number;
}

/**
 * Follows the operation events stream in the `lifeboat-audit` group and audits each event
 * (see auditOperationEvent). `dr serve` and `dr worker` both run it, so results reach the audit
 * log while either runs; events written while neither ran are audited at the next start.
 */
export function startOperationAudit({
  conn,
  audit,
  prefix,
  consumer,
  log,
  claimAfterMs = 60_000,
}: OperationAuditOptions): { stop: () => Promise<void> } {
  const stream = recoveryKeys(prefix).events;
  let stopped = false;
  const handle = async (entries: [string, string[]][] | undefined) => {
    for (const [id, fields] of entries ?? []) {
      const e = fields ? parseEvent(fields) : undefined;
      if (e) await auditOperationEvent(audit, id, e);
      await conn.xack(stream, AUDIT_GROUP, id);
    }
  };
  const loop = (async () => {
    try {
      await conn.xgroup('CREATE', stream, AUDIT_GROUP, '$', 'MKSTREAM');
    } catch (err) {
      if (!errorMessage(err).includes('BUSYGROUP'))
        log.warn({ err: errorMessage(err) }, 'cannot create the audit consumer group');
    }
    let lastClaim = 0;
    while (!stopped) {
      try {
        if (Date.now() - lastClaim > claimAfterMs / 2) {
          lastClaim = Date.now();
          const [, claimed] = (await conn.xautoclaim(
            stream,
            AUDIT_GROUP,
            consumer,
            claimAfterMs,
            '0-0',
            'COUNT',
            100,
          )) as [string, [string, string[]][]];
          await handle(claimed);
        }
        const batch = (await conn.xreadgroup(
          'GROUP',
          AUDIT_GROUP,
          consumer,
          'COUNT',
          50,
          'BLOCK',
          1000,
          'STREAMS',
          stream,
          '>',
        )) as [string, [string, string[]][]][] | null;
        await handle(batch?.[0]?.[1]);
      } catch (err) {
        if (stopped) break;
        log.warn({ err: errorMessage(err) }, 'auditing operation events failed; retrying');
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      conn.disconnect();
      // ioredis never settles a command queued while it waits to reconnect: with Redis away the
      // loop is left behind, and what it read stays unacknowledged for the next start.
      await settleWithin(loop, 2000);
    },
  };
}
