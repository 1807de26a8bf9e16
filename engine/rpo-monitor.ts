import { randomUUID } from 'node:crypto';
import { settleWithin } from '../core/settle-within.js';
import { formatDuration } from '../core/units.js';
import { replicationKey } from '../replicator/gateway/state-publisher.js';
import type { AppStatus } from '../replicator/transport/wire-types.js';
import type { AlertRecord } from './alert-store.js';
import type { Action, Notice } from './contract.js';
import { rpoSecondsOf } from './decide.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import type { Policy } from './policy.js';
import { appsSelected } from './schedules.js';

const ackAction = (id: string): Action => ({
  kind: 'ack',
  label: 'Acknowledge',
  words: `ack ${id}`,
  style: 'primary',
});

// Takes or keeps the monitor's leadership: one engine looks at a time, another takes over when it stops.
const LEAD = `
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`;

/**
 * Watches the replication state the gateway publishes and raises `rpo.breach`, `rpo.recovered`
 * and `agent.silent` notices under the alert policies: one per breach, acknowledgeable, and
 * re-sent to the escalation channels when nobody acknowledged in time.
 */
export class RpoMonitor {
  private readonly token = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: EngineContext,
    private readonly everyMs = 5000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running = this.running
        .then(() => this.tick())
        .catch((err: unknown) =>
          this.ctx.log.warn({ err: String(err) }, 'RPO monitor: check failed; next one soon'),
        );
    }, this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    // Commands wait through a reconnect: with Redis away, a check in flight and the lease's
    // release would wait for it forever, so each gets 2 s. The lease then runs out by itself.
    if (!(await settleWithin(this.running, 2000))) return;
    await settleWithin(
      this.ctx.redis
        .eval(
          `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
          1,
          this.leaderKey(),
          this.token,
        )
        .catch(() => undefined), // Redis away: the lease runs out by itself
      2000,
    );
  }

  private leaderKey = () => `${this.ctx.prefix}engine:monitor-leader`;

  /** One look at every app; only the leader acts. Public so tests can step it with a fake clock. */
  async tick(): Promise<void> {
    const { ctx } = this;
    const lead = await ctx.redis.eval(
      LEAD,
      1,
      this.leaderKey(),
      this.token,
      String(this.everyMs * 3),
    );
    if (lead !== 1) return;
    const set = ctx.policies();
    if (!set) return;
    const raw = await ctx.redis.hgetall(replicationKey(ctx.prefix));
    const now = ctx.now();
    // Paused and failed-over apps do not replicate by an operator's choice: no replication alert.
    const held = new Set<string>();
    for (const [app, text] of Object.entries(raw)) {
      const state = protectionOf(text);
      if (state.state === 'protected') continue;
      held.add(app);
      await this.closeHeld(app, state, now);
    }
    for (const policy of set.alerts) {
      if (policy.mode === 'dryrun' || policy.effect.kind !== 'alert') continue;
      for (const app of await appsSelected(policy, ctx.config, now)) {
        const text = raw[app];
        if (text === undefined) continue; // nothing published yet: nothing to judge
        if (held.has(app)) continue;
        if (policy.effect.on === 'rpo') await this.checkRpo(policy, app, text, now);
        else await this.checkAgent(policy, app, text, now);
      }
    }
  }

  private async checkRpo(policy: Policy, app: string, text: string, now: number): Promise<void> {
    const { ctx } = this;
    if (policy.effect.kind !== 'alert') return;
    const objectiveMs = policy.effect.overMs ?? ctx.config.apps[app]?.rpoObjective ?? 60_000;
    const lag = rpoSecondsOf(text, now);
    if (lag === undefined) return; // no consistent point yet: neither a breach nor a recovery
    const sinceKey = `${ctx.prefix}rpo:over-since`;
    if (lag !== undefined && lag * 1000 > objectiveMs) {
      await ctx.redis.hsetnx(sinceKey, app, String(now));
      const since = Number((await ctx.redis.hget(sinceKey, app)) ?? now);
      const open = await ctx.alerts.open('rpo', app);
      if (open)
        return this.escalate(
          policy,
          open,
          now,
          `RPO breach: ${app} is ${Math.round(lag)} s behind (objective ${objectiveMs / 1000} s)`,
        );
      if (now - since < policy.effect.forMs) return;
      const alert = await ctx.alerts.raise('rpo', app, policy.name, now);
      if (!alert) return;
      await this.record(
        policy,
        app,
        'rpo',
        alert.id,
        { lagSeconds: lag, objectiveSeconds: objectiveMs / 1000, policy: policy.name },
        {
          kind: 'rpo.breach',
          severity: 'critical',
          summary: `RPO breach: ${app} is ${Math.round(lag)} s behind (objective ${objectiveMs / 1000} s) for ${formatDuration(now - since)} (${alert.id})`,
          actions: [ackAction(alert.id)],
          data: { alert, lagSeconds: lag, objectiveSeconds: objectiveMs / 1000 },
        },
      );
      return;
    }
    await ctx.redis.hdel(sinceKey, app);
    const closed = await ctx.alerts.resolve('rpo', app, now);
    if (!closed) return;
    await this.record(
      policy,
      app,
      'rpo',
      closed.id,
      { resolved: true, lagSeconds: lag ?? null },
      {
        kind: 'rpo.recovered',
        severity: 'info',
        summary: `RPO recovered: ${app} is ${lag === undefined ? '?' : Math.round(lag)} s behind again (objective ${objectiveMs / 1000} s) after ${formatDuration(now - closed.raisedAt)} (${closed.id})`,
        data: { alert: closed, lagSeconds: lag ?? null },
      },
    );
  }

  private async checkAgent(policy: Policy, app: string, text: string, now: number): Promise<void> {
    const { ctx } = this;
    if (policy.effect.kind !== 'alert') return;
    let status: AppStatus;
    try {
      status = JSON.parse(text) as AppStatus;
    } catch {
      return; // not a state we can read; the RPO check reports the lag
    }
    const seen = status.agent ? Date.parse(status.agent.lastSeen) : Number.NaN;
    // No agent since the gateway started, with points stored: it is silent since the last point.
    const last = Number.isFinite(seen)
      ? seen
      : status.lastPoint
        ? Date.parse(status.lastPoint.time)
        : Number.NaN;
    if (!Number.isFinite(last)) return;
    const quiet = now - last;
    if (quiet > policy.effect.forMs) {
      const open = await ctx.alerts.open('agent-silent', app);
      if (open)
        return this.escalate(
          policy,
          open,
          now,
          `The agent of ${app} has not been heard for ${formatDuration(quiet)}`,
        );
      const alert = await ctx.alerts.raise('agent-silent', app, policy.name, now);
      if (!alert) return;
      await this.record(
        policy,
        app,
        'agent-silent',
        alert.id,
        { quietMs: quiet, policy: policy.name },
        {
          kind: 'agent.silent',
          severity: 'critical',
          summary: `The agent of ${app}${status.agent ? ` on ${status.agent.host}` : ''} has not been heard for ${formatDuration(quiet)} (${alert.id})`,
          actions: [ackAction(alert.id)],
          data: { alert, quietMs: quiet },
        },
      );
      return;
    }
    const closed = await ctx.alerts.resolve('agent-silent', app, now);
    if (!closed) return;
    await this.record(
      policy,
      app,
      'agent-silent',
      closed.id,
      { resolved: true },
      {
        kind: 'agent.silent',
        severity: 'info',
        summary: `The agent of ${app} is heard again (${closed.id})`,
        data: { alert: closed, resolved: true },
      },
    );
  }

  /**
   * An app paused or failed over: its open replication alerts are closed, saying why, and its
   * breach clock is reset so that a resumed app is judged afresh. A failed-over app runs on the
   * recovered server; no replication alert is raised for it until a failback protects it again.
   */
  private async closeHeld(app: string, held: HeldState, now: number): Promise<void> {
    const { ctx } = this;
    await ctx.redis.hdel(`${ctx.prefix}rpo:over-since`, app);
    const why =
      held.state === 'paused'
        ? `${app} is paused${held.by ? ` by ${held.by}` : ''}; replication alerts stay off until \`resume ${app}\``
        : `${app} is failed over${held.opId ? ` (${held.opId})` : ''} and runs on the recovered server; replication alerts stay off until a failback protects it again`;
    for (const kind of ['rpo', 'agent-silent'] as const) {
      const closed = await ctx.alerts.resolve(kind, app, now);
      if (!closed) continue;
      await ctx.audit.append('alert', {
        id: closed.id,
        app,
        kind,
        resolved: true,
        closedBecause: held.state,
      });
      await ctx.notices.publish({
        kind: kind === 'rpo' ? 'rpo.recovered' : 'agent.silent',
        key: `alert:${closed.id}`,
        app,
        targets: targetsFor(ctx, app, undefined, 'alerts'),
        severity: 'info',
        summary: `${kind === 'rpo' ? 'RPO' : 'Agent'} alert ${closed.id} closed: ${why}`,
        data: { alert: closed, resolved: true, protection: held.state },
      });
    }
  }

  /** Records a raised or resolved alert in the audit log and tells the alert channels. */
  private async record(
    policy: Policy,
    app: string,
    kind: AlertRecord['kind'],
    id: string,
    audit: Record<string, unknown>,
    n: Pick<Notice, 'kind' | 'severity' | 'summary' | 'data'> & Pick<Partial<Notice>, 'actions'>,
  ): Promise<void> {
    await this.ctx.audit.append('alert', { id, app, kind, ...audit });
    await this.ctx.notices.publish({
      kind: n.kind,
      key: `alert:${id}`,
      app,
      targets: this.targets(policy, app),
      severity: n.severity,
      summary: n.summary,
      ...(n.actions ? { actions: n.actions } : {}),
      data: n.data,
    });
  }

  /** The app's channels, `channels.alerts` and the policy's own `to:`. */
  private targets(policy: Policy, app: string): string[] {
    const extra = policy.effect.kind === 'alert' ? (policy.effect.to ?? []) : [];
    return [...new Set([...targetsFor(this.ctx, app, undefined, 'alerts'), ...extra])];
  }

  /** Re-sends an unacknowledged alert to the escalation channels once its time is up. */
  private async escalate(
    policy: Policy,
    alert: AlertRecord,
    now: number,
    what: string,
  ): Promise<void> {
    const { ctx } = this;
    if (policy.effect.kind !== 'alert' || policy.effect.escalateAfterMs === undefined) return;
    if (alert.ackedBy || alert.escalatedAt || now - alert.raisedAt < policy.effect.escalateAfterMs)
      return;
    alert.escalatedAt = now;
    await ctx.alerts.update(alert);
    await ctx.audit.append('alert', {
      id: alert.id,
      app: alert.app,
      kind: alert.kind,
      escalated: true,
    });
    await ctx.notices.publish({
      kind: 'alert.escalated',
      key: `alert:${alert.id}`,
      app: alert.app,
      targets: targetsFor(ctx, alert.app, undefined, 'escalation'),
      severity: 'critical',
      summary: `Escalated: ${what}; unacknowledged for ${formatDuration(now - alert.raisedAt)} (${alert.id})`,
      actions: [ackAction(alert.id)],
      data: { alert },
    });
  }
}

/** What the gateway says of an app's protection: protected, paused (by whom) or failed over. */
export interface HeldState {
  state: 'protected' | 'paused' | 'failed-over';
  by?: string;
  opId?: string;
}

/**
 * The protection state in a published status. A gateway older than the `protection` field shows
 * paused and failed-over apps alike as phase `paused`: that counts as paused.
 */
export function protectionOf(text: string): HeldState {
  let s: Partial<AppStatus>;
  try {
    s = JSON.parse(text) as Partial<AppStatus>;
  } catch {
    return { state: 'protected' }; // unreadable: judged as before (the RPO check reports it)
  }
  const p = s.protection;
  if (p && (p.state === 'paused' || p.state === 'failed-over')) {
    return {
      state: p.state,
      ...(p.by !== undefined ? { by: p.by } : {}),
      ...(p.opId !== undefined ? { opId: p.opId } : {}),
    };
  }
  if (!p && s.phase === 'paused') return { state: 'paused' };
  return { state: 'protected' };
}
