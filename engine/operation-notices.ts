import type { Redis } from 'ioredis';
import { errorMessage } from '../core/errors.js';
import { settleWithin } from '../core/settle-within.js';
import { formatBytes, formatDuration } from '../core/units.js';
import { parseEvent } from '../replicator/jobs/operation-events.js';
import {
  type CleanupResult,
  type FailbackResult,
  type OperationEvent,
  type OperationResult,
  recoveryKeys,
  type VerifyResult,
} from '../replicator/jobs/recovery-contract.js';
import type { Notice } from './contract.js';
import { lastDrillKey } from './decide.js';
import { type EngineContext, loadOpMeta, targetsFor } from './engine-context.js';
import { withProgress } from './gather-card-facts.js';
import { recordLastRun } from './last-runs.js';
import { childNotice, parentPlan, planNotice } from './plan-notice.js';
import { postDrillReport } from './post-drill-report.js';
import { stepLabel } from './step-label.js';
import { cancelAction } from './submit-operation.js';

const GROUP = 'lifeboat-engine';

/**
 * Turns the replicator's operation events into notices (their audit entries are written by
 * startOperationAudit, which `dr worker` runs too). The engines share one consumer group on
 * the events stream, so each event becomes one notice however many engines run.
 */
export function startOperationNotices(
  ctx: EngineContext,
  conn: Redis,
): { stop: () => Promise<void> } {
  const stream = recoveryKeys(ctx.prefix).events;
  const consumer = `engine-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  let stopped = false;
  const loop = (async () => {
    try {
      await conn.xgroup('CREATE', stream, GROUP, '$', 'MKSTREAM');
    } catch (err) {
      if (!errorMessage(err).includes('BUSYGROUP'))
        ctx.log.warn({ err: errorMessage(err) }, 'cannot create the events consumer group');
    }
    let lastClaim = 0;
    while (!stopped) {
      try {
        // Events a stopped engine read but never acknowledged: taken over after a minute.
        if (Date.now() - lastClaim > 30_000) {
          lastClaim = Date.now();
          const [, claimed] = (await conn.xautoclaim(
            stream,
            GROUP,
            consumer,
            60_000,
            '0-0',
            'COUNT',
            100,
          )) as [string, [string, string[]][]];
          for (const [id, fields] of claimed ?? []) {
            const e = fields ? parseEvent(fields) : undefined;
            if (e) await noticesOf(ctx, e);
            await conn.xack(stream, GROUP, id);
          }
        }
        const batch = (await conn.xreadgroup(
          'GROUP',
          GROUP,
          consumer,
          'COUNT',
          50,
          'BLOCK',
          1000,
          'STREAMS',
          stream,
          '>',
        )) as [string, [string, string[]][]][] | null;
        for (const [id, fields] of batch?.[0]?.[1] ?? []) {
          const e = parseEvent(fields);
          if (e) await noticesOf(ctx, e);
          await conn.xack(stream, GROUP, id);
        }
      } catch (err) {
        if (stopped) break;
        ctx.log.warn({ err: errorMessage(err) }, 'reading operation events failed; retrying');
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      conn.disconnect();
      // ioredis never settles a command queued while it waits to reconnect, not even on
      // disconnect: with Redis away the loop is left behind (what it read stays unacknowledged).
      await settleWithin(loop, 2000);
    },
  };
}

/** The event's notice, then, when it ends a scheduled drill, the app's drill report. */
async function noticesOf(ctx: EngineContext, e: OperationEvent): Promise<void> {
  await operationNotice(ctx, e);
  await postDrillReport(ctx, e);
}

/** One operation event as a notice (and, for a finished drill, the app's last-drill time). */
export async function operationNotice(
  ctx: EngineContext,
  e: OperationEvent,
): Promise<Notice | undefined> {
  // A plan run and its apps' operations share one message: the plan's card.
  if (e.job === 'plan') return planNotice(ctx, e.opId, e);
  const plan = await parentPlan(ctx, e.opId);
  if (plan) return childNotice(ctx, plan, e);
  const meta = await loadOpMeta(ctx, e.opId);
  // An approved operation's message is its approval card: it keeps showing the facts it was approved on.
  const approval = meta?.approvalId ? await ctx.approvals.get(meta.approvalId) : undefined;
  const card = approval ? await ctx.approvals.card(approval.id) : undefined;
  const base = {
    key: `op:${e.opId}`,
    app: e.app,
    targets: targetsFor(ctx, e.app, meta?.channel),
    data: {
      opId: e.opId,
      job: e.job,
      event: e,
      ...(approval && card ? { card: withProgress(card, approval) } : {}),
    },
  };
  // While it runs, the message offers Cancel (asking first).
  const running =
    e.job === 'drill' || e.job === 'failover' || e.job === 'failback'
      ? { actions: [cancelAction(e.opId, e.job, e.app)] }
      : {};
  const what = `${e.job === 'cleanup' ? 'Cleanup' : e.job[0]?.toUpperCase() + e.job.slice(1)} of ${e.app}`;
  switch (e.type) {
    case 'started':
      return ctx.notices.publish({
        ...base,
        kind: 'operation.started',
        severity: 'info',
        summary: `${what} started (${e.opId})`,
        ...running,
      });
    case 'step': {
      if (e.progress !== undefined && e.progress < 1) return undefined; // only whole steps: chat messages are not progress bars
      // A step that names what it did (which drill server it ended) reads as that line.
      const label = e.detail ?? stepLabel(e.step ?? 'step');
      if (label === undefined) return undefined; // reported again, under its finished name
      return ctx.notices.publish({
        ...base,
        kind: 'operation.step',
        severity: e.step === 'drill-not-ended' ? 'warning' : 'info',
        summary: `${what}: ${label} (${e.opId})`,
        ...running,
      });
    }
    case 'finished': {
      if (e.error) {
        await recordLastRun(ctx, e.app, e.job, {
          opId: e.opId,
          at: e.time || ctx.now(),
          ok: false,
          error: e.error.message,
        });
        return ctx.notices.publish({
          ...base,
          kind: 'operation.failed',
          severity: e.error.code === 'operation_cancelled' ? 'warning' : 'critical',
          summary: `${what} failed (${e.opId}): ${e.error.message}`,
        });
      }
      const r = e.result;
      if (r && 'rto' in r) {
        const res = r as OperationResult;
        await recordLastRun(ctx, e.app, e.job, {
          opId: e.opId,
          at: e.time || ctx.now(),
          ok: true,
          rtoMs: res.rto.totalMs,
        });
        if (e.job === 'drill')
          await ctx.redis.set(lastDrillKey(ctx.prefix, e.app), String(e.time || ctx.now()));
        const unfenced = res.fence !== undefined && !res.fence.fenced;
        const drillLeft = res.drills?.some((d) => !d.ended) === true;
        return ctx.notices.publish({
          ...base,
          kind: 'operation.finished',
          severity: unfenced || drillLeft ? 'warning' : 'info',
          summary: `${what} is healthy (${e.opId}): point ${res.point}, data age ${res.dataAgeSeconds} s, RTO ${formatDuration(res.rto.totalMs)}${res.fence ? `; ${res.fence.fenced ? 'source fenced' : 'source NOT fenced'}` : ''}`,
          details: [
            ...(res.fence ? [res.fence.detail] : []),
            ...(res.drills ?? []).map((d) => d.detail),
            `RTO ${formatDuration(res.rto.totalMs)}: materialise ${formatDuration(res.rto.materialiseMs)}, launch ${formatDuration(res.rto.launchMs)}, healthy ${formatDuration(res.rto.healthyMs)}`,
            `health: ${res.health.output.split('\n')[0] ?? ''}`,
            ...recoveryLines(res),
            `server: ${res.server.id}${res.server.endpoint ? ` at ${res.server.endpoint}` : ''}`,
            ...(res.cleanupAt ? [`cleanup at ${res.cleanupAt}`] : []),
            ...(res.server.warnings ?? []).map((w) => `warning: ${w}`),
          ],
          ...(e.job === 'drill'
            ? {
                actions: [
                  { kind: 'cleanup' as const, label: 'Clean up', words: `cleanup ${e.opId}` },
                ],
              }
            : {}),
        });
      }
      if (e.job === 'failback') {
        const fb = (r ?? {}) as Partial<FailbackResult>;
        await recordLastRun(ctx, e.app, e.job, {
          opId: e.opId,
          at: e.time || ctx.now(),
          ok: true,
          ...(typeof fb.downtimeMs === 'number' ? { rtoMs: fb.downtimeMs } : {}),
        });
      }
      const d = describe(r);
      return ctx.notices.publish({
        ...base,
        kind: 'operation.finished',
        severity: d.ok ? 'info' : 'critical',
        // A failback's line ends with how protected the app is again: the thing to read last.
        summary: d.tail ? `${what} done (${e.opId}): ${d.text}` : `${what} ${d.text} (${e.opId})`,
        ...(d.details ? { details: d.details } : {}),
      });
    }
  }
}

/** One line for the results that are not a recovered server: failback, verify, cleanup. */
function describe(r: unknown): { ok: boolean; text: string; tail?: boolean; details?: string[] } {
  // The fields of FailbackResult, VerifyResult and CleanupResult this line uses.
  const x = (r ?? {}) as { mode?: (FailbackResult | VerifyResult)['mode'] } & Partial<
    Pick<FailbackResult, 'bytesSent' | 'downtimeMs' | 'totalMs' | 'protection' | 'wayHome'> &
      Pick<VerifyResult, 'ok' | 'point' | 'problemCount'> &
      Pick<CleanupResult, 'removed' | 'endedFor'>
  >;
  if (x.mode === 'failback') {
    const p = x.protection;
    // Home again but not protected is an app without a DR copy: it needs someone's attention,
    // and the line says why and what to do.
    const state = !p
      ? 'the agent may replicate again'
      : p.protected
        ? `protected again, RPO ${p.rpoSeconds ?? '?'} s`
        : p.detail;
    return {
      ok: p?.protected !== false,
      tail: true,
      text: `${x.wayHome ? 'home from ECS by reverse replication, ' : ''}${formatBytes(x.bytesSent ?? 0)} written back, downtime ${formatDuration(x.downtimeMs ?? 0)}, total ${formatDuration(x.totalMs ?? 0)}; ${state}`,
      ...(p?.protected ? { details: [p.detail] } : {}),
    };
  }
  if (x.mode === 'verify')
    return x.ok
      ? { ok: true, text: `done: point ${x.point} verified` }
      : { ok: false, text: `found point ${x.point} damaged: ${x.problemCount ?? '?'} problem(s)` };
  if (Array.isArray(x.removed))
    return {
      ok: true,
      text: `done${x.endedFor ? ` before ${x.endedFor} launched` : ''}: ${x.removed.length ? `removed ${x.removed.join(', ')}` : 'nothing was left'}`,
    };
  return { ok: true, text: 'done' };
}

/** How the volumes were recovered, for a finished drill or failover's message. */
function recoveryLines(res: OperationResult): string[] {
  const r = res.recovery;
  if (!r) return [];
  if (r.kind === 'full') return r.why ? [`volumes materialised in full: ${r.why}`] : [];
  if (r.hydration) {
    return [
      `served on demand, hydrated in ${formatDuration(r.hydration.ms)}: no longer needs the gateway since ${r.hydration.independentAt}${r.hydration.retries ? ` (${r.hydration.retries} fetches retried while the gateway was unreachable)` : ''}`,
    ];
  }
  return [
    `served on demand from the vault, ${Math.round((r.hydrated ?? 0) * 100)} % local, hydrating behind`,
  ];
}
