import type { Redis } from 'ioredis';
import { controlKeys, type Notice, type NoticeKind } from '../../engine/contract.js';

/** An approval still waiting for people, as its notices tell it. */
export interface PendingApproval {
  /** The id people type (`approve A-12`), or the notice key when no action names it. */
  id: string;
  key: string;
  app?: string;
  summary: string;
  /** Approvals so far and how many are needed, when the notice's data says. */
  have?: number;
  need?: number;
  requestedAt: number;
  expiresAt?: string;
}

/** An alert not yet recovered. */
export interface OpenAlert {
  id: string;
  key: string;
  kind: NoticeKind;
  app?: string;
  severity: Notice['severity'];
  summary: string;
  since: number;
  acknowledged: boolean;
}

const APPROVAL_OPEN: NoticeKind[] = ['approval.requested', 'approval.updated'];
const APPROVAL_CLOSED: NoticeKind[] = ['approval.granted', 'approval.rejected', 'approval.expired'];
const ALERT_OPEN: NoticeKind[] = ['rpo.breach', 'agent.silent', 'alert.escalated'];

/** The word after `verb` in an action's words: `approve A-12` → `A-12`. */
function actionId(n: Notice, verb: 'approve' | 'ack'): string | undefined {
  for (const a of n.actions ?? []) {
    const [v, id] = a.words.split(/\s+/);
    if (v === verb && id) return id;
  }
  return undefined;
}

function approvalData(data: unknown): {
  id?: string;
  have?: number;
  need?: number;
  expiresAt?: string;
} {
  if (typeof data !== 'object' || data === null) return {};
  const d = data as { id?: unknown; required?: unknown; approvals?: unknown; expiresAt?: unknown };
  return {
    ...(typeof d.id === 'string' ? { id: d.id } : {}),
    ...(Array.isArray(d.approvals) ? { have: d.approvals.length } : {}),
    ...(typeof d.required === 'number' ? { need: d.required } : {}),
    ...(typeof d.expiresAt === 'string' ? { expiresAt: d.expiresAt } : {}),
  };
}

/**
 * Folds notices (oldest first) into what is open now: approvals not yet granted, rejected or
 * expired, and alerts not yet recovered. It relies only on the notice contract of
 * engine/contract.ts (kind, key, actions), so it reads any engine that keeps to it.
 */
export function foldNotices(
  notices: Notice[],
  now: number = Date.now(),
): { approvals: PendingApproval[]; alerts: OpenAlert[] } {
  const approvals = new Map<string, PendingApproval>();
  const alerts = new Map<string, OpenAlert>();
  for (const n of notices) {
    if (APPROVAL_OPEN.includes(n.kind)) {
      const d = approvalData(n.data);
      const before = approvals.get(n.key);
      approvals.set(n.key, {
        id: d.id ?? actionId(n, 'approve') ?? before?.id ?? n.key,
        key: n.key,
        ...(n.app !== undefined ? { app: n.app } : {}),
        summary: n.summary,
        ...(d.have !== undefined ? { have: d.have } : {}),
        ...(d.need !== undefined ? { need: d.need } : {}),
        requestedAt: before?.requestedAt ?? n.time,
        ...(d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {}),
      });
    } else if (APPROVAL_CLOSED.includes(n.kind)) {
      approvals.delete(n.key);
    } else if (ALERT_OPEN.includes(n.kind)) {
      const before = alerts.get(n.key);
      alerts.set(n.key, {
        id: actionId(n, 'ack') ?? before?.id ?? n.key.replace(/^alert:/, ''),
        key: n.key,
        kind: n.kind === 'alert.escalated' && before ? before.kind : n.kind,
        ...(n.app !== undefined ? { app: n.app } : {}),
        severity: n.severity,
        summary: n.summary,
        since: before?.since ?? n.time,
        acknowledged: before?.acknowledged ?? false,
      });
    } else if (n.kind === 'alert.acknowledged') {
      const a = alerts.get(n.key);
      if (a) a.acknowledged = true;
    } else if (n.kind === 'rpo.recovered') {
      alerts.delete(n.key);
    }
  }
  const stillPending = [...approvals.values()].filter(
    (a) => a.expiresAt === undefined || Date.parse(a.expiresAt) > now,
  );
  return {
    approvals: stillPending.sort((a, b) => a.requestedAt - b.requestedAt),
    alerts: [...alerts.values()].sort((a, b) => a.since - b.since),
  };
}

/** The newest `count` notices of the stream, oldest first; entries that are not notices are skipped. */
export async function readRecentNotices(
  redis: Redis,
  prefix: string,
  count = 2000,
): Promise<Notice[]> {
  const entries = await redis.xrevrange(controlKeys(prefix).notices, '+', '-', 'COUNT', count);
  const out: Notice[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const fields = (entries[i] as [string, string[]])[1];
    const at = fields.indexOf('notice');
    if (at < 0 || at % 2 !== 0) continue;
    try {
      const n = JSON.parse(fields[at + 1] ?? '') as Notice;
      if (typeof n.kind === 'string' && typeof n.key === 'string') out.push(n);
    } catch {
      // not JSON: another writer's entry; the page shows what it can read
    }
  }
  return out;
}
