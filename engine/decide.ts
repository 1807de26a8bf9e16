import { errorMessage, isDrError } from '../core/errors.js';
import { replicationKey } from '../replicator/gateway/state-publisher.js';
import { DEFAULT_PREFIX, recoveryKeys } from '../replicator/jobs/recovery-contract.js';
import { type AppState, commandFacts } from './command-facts.js';
import type { Command, Decision, PolicyOutcome, Reply } from './contract.js';
import type { EngineContext } from './engine-context.js';
import { type Evaluation, evaluatePolicies } from './evaluate-policies.js';
import { closest } from './fact-catalog.js';
import type { Identity } from './identity.js';
import { formatProblem } from './policy.js';

/** A judged command: the evaluation, or a refusal decided before any policy ran. */
export interface Judgement {
  evaluation?: Evaluation;
  /** Set when the command is refused: the reason and the policy (or rule of the house) that refused it. */
  deny?: { reason: string; policy: string };
}

/** `lastdrill:<app>`: ms of the app's last successful drill, written when a drill finishes. */
export const lastDrillKey = (prefix: string, app: string) => `${prefix}lastdrill:${app}`;

/** What the facts need from Redis about an app. */
export async function appState(
  ctx: Pick<EngineContext, 'redis' | 'prefix' | 'now'>,
  app: string | undefined,
): Promise<AppState> {
  if (!app) return { operationsInProgress: 0 };
  const keys = recoveryKeys(ctx.prefix ?? DEFAULT_PREFIX);
  const [rep, drill, lock] = await Promise.all([
    ctx.redis.hget(replicationKey(ctx.prefix), app),
    ctx.redis.get(lastDrillKey(ctx.prefix, app)),
    ctx.redis.exists(keys.lock(app)),
  ]);
  const state: AppState = { operationsInProgress: lock };
  const lag = rpoSecondsOf(rep, ctx.now());
  if (lag !== undefined) state.rpoSeconds = lag;
  if (drill !== null) state.lastDrillAt = Number(drill);
  return state;
}

/**
 * RPO now from a published replication state: now minus the newest consistent point's time, so
 * the lag keeps growing when the gateway stops publishing.
 */
export function rpoSecondsOf(raw: string | null, now: number): number | undefined {
  if (raw === null) return undefined;
  try {
    const s = JSON.parse(raw) as {
      lastConsistentPoint?: { time: string; unchangedAt?: string } | null;
    };
    // unchangedAt: the agent found nothing changed since the point as late as that.
    const p = s.lastConsistentPoint;
    const t = p ? Date.parse(p.unchangedAt ?? p.time) : Number.NaN;
    return Number.isFinite(t) ? Math.max(0, (now - t) / 1000) : undefined;
  } catch {
    return undefined; // not ours to read: the RPO is unknown
  }
}

/** Unknown app: the reply, with "did you mean" from the configured apps. */
export function unknownApp(ctx: EngineContext, app: string | undefined): Reply | undefined {
  if (app !== undefined && ctx.config.apps[app]) return undefined;
  const known = Object.keys(ctx.config.apps);
  if (app === undefined)
    return {
      ok: false,
      summary: `Which app? Give one of: ${known.join(', ') || '(none configured)'}`,
    };
  const near = closest(app, known);
  return {
    ok: false,
    summary: near
      ? `Unknown app "${app}". Did you mean ${near}?`
      : `Unknown app "${app}". Apps: ${known.join(', ') || '(none configured yet)'}`,
  };
}

/** Judges an action command: the rules of the house first (identity, a loaded policy set), then the policies. */
export async function judge(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Judgement> {
  if (!who.known) {
    return {
      deny: {
        reason: `${command.actor} is not a person in dr.yaml and may only read (status, points, history); ask an administrator to add this identity under people:`,
        policy: '(identity)',
      },
    };
  }
  // A set that failed to (re)load fails closed, as at start-up: the last good set may hold grants
  // from files that are gone or broken now, so it never decides while the files have problems.
  const set = ctx.policies();
  const problems = ctx.policyProblems();
  if (!set || problems.length > 0) {
    const why = problems[0];
    return {
      deny: {
        reason: `no valid policy set is loaded${why ? ` (${formatProblem(why)}${problems.length > 1 ? ` and ${problems.length - 1} more problem(s)` : ''})` : ''}; fix the policy files and they reload`,
        policy: '(policies)',
      },
    };
  }
  const state = await appState(ctx, command.app);
  const facts = commandFacts(ctx.config, command, who, state, ctx.now());
  const evaluation = await evaluatePolicies(set, facts);
  if (evaluation.outcome === 'deny' && evaluation.policy?.effect.kind === 'deny')
    return {
      evaluation,
      deny: { reason: evaluation.policy.effect.reason, policy: evaluation.policy.name },
    };
  if (evaluation.outcome === 'none')
    return {
      evaluation,
      deny: {
        reason: `no policy lets ${who.person ?? command.actor} ${command.verb}${command.app ? ` ${command.app}` : ''}`,
        policy: '(default deny)',
      },
    };
  return { evaluation };
}

/** The policies that matched, for the audit log. */
export function fired(outcomes: PolicyOutcome[]): string[] {
  return outcomes.filter((o) => o.matched).map((o) => o.policy);
}

/** A command that failed, as a reply: a DrError's own message, else what it was doing and why. */
export function failedReply(err: unknown, doing: string): Reply {
  return { ok: false, summary: isDrError(err) ? err.message : `${doing}: ${errorMessage(err)}` };
}

/** A refusal as a reply. */
export function denyReply(j: Judgement, policies: PolicyOutcome[]): Reply {
  const deny = j.deny ?? { reason: 'refused', policy: '(default deny)' };
  const decision: Decision = {
    outcome: 'deny',
    reason: deny.reason,
    policy: deny.policy,
    policies,
  };
  return {
    ok: false,
    summary: `Denied: ${deny.reason} (policy ${deny.policy})`,
    decision,
    data: { decision },
  };
}
