// throttle <app> <rate>|default: a bandwidth cap for an app's agent, set through the policies and audited.
import { errorMessage } from '../core/errors.js';
import { MIN_RATE, parseRateSchedule, RATE_HINT, rateAt } from '../core/rate-schedule.js';
import { formatBytes } from '../core/units.js';
import type { GatewayClient } from '../replicator/transport/gateway-client.js';
import type { ThrottleState } from '../replicator/transport/wire-types.js';
import type { Command, Reply } from './contract.js';
import { denyReply, failedReply, fired, judge, unknownApp } from './decide.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import type { Identity } from './identity.js';
import { engineGateway } from './submit-pause.js';

/**
 * Sets (or with `default`, removes) the cap the app's agent applies over its own `agent.maxRate`:
 * the rate is checked here first, then the policies decide, then the gateway keeps it and the
 * agent takes it from its next heartbeat answer (within a few seconds).
 */
export async function submitThrottle(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const bad = unknownApp(ctx, command.app);
  if (bad) return bad;
  const app = command.app as string;
  const text = command.args.rate?.trim() ?? '';
  const lifting = /^default$/i.test(text);
  if (!lifting) {
    const r = parseRateSchedule(text);
    if ('error' in r)
      return {
        ok: false,
        summary: `throttle ${app} ${text}: ${r.error}`,
        details: [
          `To resolve, ${RATE_HINT}; or \`throttle ${app} default\` for the agent's own setting.`,
        ],
      };
  }
  const j = await judge(ctx, command, who);
  if (j.deny) return denyReply(j, j.evaluation?.outcomes ?? []);
  const policies = j.evaluation?.outcomes ?? [];
  if (j.evaluation?.outcome === 'approval')
    return {
      ok: false,
      summary: `throttle of ${app} acts at once and cannot wait for approvals, but policy ${j.evaluation.policy?.name ?? '?'} asks for one; let it allow or deny throttle instead`,
    };
  const person = who.person ?? command.actor;
  let client: GatewayClient | undefined;
  let state: ThrottleState;
  try {
    client = engineGateway(ctx);
    state = await client.setThrottle(app, { maxRate: lifting ? null : text, by: person });
  } catch (err) {
    await ctx.audit.append(
      'result',
      { app, verb: 'throttle', rate: text, ok: false, error: errorMessage(err) },
      command.actor,
    );
    return failedReply(err, `Cannot throttle ${app}`);
  } finally {
    client?.close();
  }
  await ctx.audit.append(
    'result',
    { app, verb: 'throttle', ok: true, maxRate: state.maxRate, policies: fired(policies) },
    command.actor,
  );
  const summary = lifting
    ? `${person} removed the bandwidth cap set from chat for ${app}: its agent's own setting (agent.maxRate or --max-rate) holds again`
    : `${person} capped replication of ${app} at ${describe(text, ctx.config.apps[app]?.timeZone, ctx.now())}; its agent applies it at its next heartbeat`;
  await ctx.notices.publish({
    kind: 'replication.throttled',
    key: `throttle:${app}:${state.at ?? ''}`,
    app,
    targets: targetsFor(ctx, app, command.channel),
    severity: 'info',
    summary,
    data: { app, throttle: state },
  });
  return { ok: true, summary, data: { app, throttle: state } };
}

/** `20.0 MiB/s`, or the schedule with the rate in force now. */
function describe(text: string, tz: string | undefined, now: number): string {
  const r = parseRateSchedule(text);
  if ('error' in r) return text;
  const single = r.schedule.windows.length === 1 && r.schedule.windows[0]?.from === undefined;
  const zone = tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const current = rateAt(r.schedule, now, zone);
  const rate = (n: number | undefined) =>
    n === undefined ? 'no cap' : `${formatBytes(Math.max(n, MIN_RATE))}/s`;
  return single ? rate(current) : `${text} (${zone}; now ${rate(current)})`;
}
