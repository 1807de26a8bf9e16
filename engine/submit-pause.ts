import { errorMessage, isDrError } from '../core/errors.js';
import { homePaths } from '../core/home.js';
import { GatewayClient } from '../replicator/transport/gateway-client.js';
import { tlsClientOptions } from '../replicator/transport/tls-options.js';
import type { ProtectionState } from '../replicator/transport/wire-types.js';
import type { Command, Reply } from './contract.js';
import { denyReply, failedReply, fired, judge, unknownApp } from './decide.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import type { Identity } from './identity.js';

/** A client for the gateway named in dr.yaml, with this home's certificates. */
export function engineGateway(ctx: EngineContext): GatewayClient {
  const host = ctx.config.gateway.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return new GatewayClient({
    address: ctx.config.gateway.address,
    addresses: ctx.config.gateway.addresses,
    tls: tlsClientOptions(homePaths(ctx.home), host),
    timeoutMs: 10_000,
  });
}

/**
 * pause / resume <app>: authorised by the policies, then the gateway's protection state changes.
 * While paused the gateway refuses the agent's batches and commits; the agent waits and, once
 * resumed, resyncs what changed meanwhile.
 */
export async function submitPause(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const bad = unknownApp(ctx, command.app);
  if (bad) return bad;
  const app = command.app as string;
  const j = await judge(ctx, command, who);
  if (j.deny) return denyReply(j, j.evaluation?.outcomes ?? []);
  const policies = j.evaluation?.outcomes ?? [];
  if (j.evaluation?.outcome === 'approval')
    return {
      ok: false,
      summary: `${command.verb} of ${app} acts at once and cannot wait for approvals, but policy ${j.evaluation.policy?.name ?? '?'} asks for one; let it allow or deny ${command.verb} instead`,
    };
  const person = who.person ?? command.actor;
  const pausing = command.verb === 'pause';
  let client: GatewayClient | undefined;
  let state: ProtectionState;
  /** When the pause being ended began: a pause and its resume are one message in chat. */
  let pausedSince: string | undefined;
  try {
    client = engineGateway(ctx);
    if (!pausing) pausedSince = (await client.protection(app)).since;
    state = await client.setProtection(
      app,
      pausing ? { state: 'paused', by: person } : { state: 'protected', from: 'paused' },
    );
  } catch (err) {
    await ctx.audit.append(
      'result',
      { app, verb: command.verb, ok: false, error: errorMessage(err) },
      command.actor,
    );
    if (isDrError(err, 'not_paused'))
      return { ok: false, summary: `${app} is not paused; nothing to resume` };
    return failedReply(err, `Cannot ${command.verb} ${app}`);
  } finally {
    client?.close();
  }
  if (state.unchanged)
    return {
      ok: true,
      summary: `${app} is already paused (by ${state.by ?? '?'} since ${state.since ?? '?'}); resume it with \`resume ${app}\``,
      data: { app, protection: state },
    };
  await ctx.audit.append(
    'result',
    { app, verb: command.verb, ok: true, state: state.state, policies: fired(policies) },
    command.actor,
  );
  const summary = pausing
    ? `${person} paused replication of ${app}: no new recovery points until \`resume ${app}\`; the agent waits and changes keep being tracked`
    : `${person} resumed replication of ${app}: the agent resyncs what changed while paused and commits the next point`;
  await ctx.notices.publish({
    kind: pausing ? 'replication.paused' : 'replication.resumed',
    key: `pause:${app}:${pausing ? state.since : pausedSince}`,
    app,
    targets: targetsFor(ctx, app, command.channel),
    severity: pausing ? 'warning' : 'info',
    summary,
    data: { app, protection: state },
  });
  return { ok: true, summary, data: { app, protection: state } };
}
