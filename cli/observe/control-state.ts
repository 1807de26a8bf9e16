import type { Redis } from 'ioredis';
import { type AlertRecord, AlertStore } from '../../engine/alert-store.js';
import { ApprovalStore } from '../../engine/approval-store.js';

/** An approval still waiting for people. */
export interface PendingApproval {
  /** The id people type: `approve A-12`. */
  id: string;
  opId: string;
  app: string;
  verb: string;
  requestedBy: string;
  /** Approvals so far and how many are needed. */
  have: number;
  need: number;
  groups: string[];
  /** ISO time. */
  expiresAt: string;
}

/** An alert not yet resolved. */
export interface OpenAlert {
  /** The id people type: `ack AL-4`. */
  id: string;
  kind: AlertRecord['kind'];
  app: string;
  policy: string;
  /** ms since epoch. */
  raisedAt: number;
  /** Escalated alerts are critical, the others warnings. */
  severity: 'warning' | 'critical';
  acknowledgedBy?: string;
}

/** Approvals the engine keeps as pending and whose expiry has not passed, oldest first. */
export async function readPendingApprovals(
  redis: Redis,
  prefix: string,
  now: number,
  scan = 500,
): Promise<PendingApproval[]> {
  const recent = await new ApprovalStore(redis, prefix).recent(scan);
  return recent
    .filter((a) => a.status === 'pending' && a.expiresAtMs > now)
    .reverse()
    .map((a) => ({
      id: a.id,
      opId: a.opId,
      app: a.app,
      verb: a.verb,
      requestedBy: a.requestedBy,
      have: a.approvals.length,
      need: a.required,
      groups: a.groups,
      expiresAt: a.expiresAt,
    }));
}

/** Alerts the engine holds open (`<prefix>alert:open:<kind>:<app>`), oldest first. */
export async function readOpenAlerts(redis: Redis, prefix: string): Promise<OpenAlert[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}alert:open:*`, 'COUNT', 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const ids = (await redis.mget(...keys)).filter((id): id is string => id !== null);
  const store = new AlertStore(redis, prefix);
  const alerts: OpenAlert[] = [];
  for (const id of new Set(ids)) {
    const a = await store.get(id);
    if (!a || a.resolvedAt !== undefined) continue; // resolved between the two reads
    alerts.push({
      id: a.id,
      kind: a.kind,
      app: a.app,
      policy: a.policy,
      raisedAt: a.raisedAt,
      severity: a.escalatedAt !== undefined ? 'critical' : 'warning',
      ...(a.ackedBy !== undefined ? { acknowledgedBy: a.ackedBy } : {}),
    });
  }
  // Oldest first; alerts raised in the same millisecond keep the order of their ids (AL-1, AL-2 …).
  const seq = (id: string) => Number(id.replace(/^\D+/, '')) || 0;
  return alerts.sort((a, b) => a.raisedAt - b.raisedAt || seq(a.id) - seq(b.id));
}
