import { errorMessage } from '../core/errors.js';
import { homePaths } from '../core/home.js';
import { loadKeyEncryptionKey } from '../replicator/crypto/key-encryption-key.js';
import { replicationKey } from '../replicator/gateway/state-publisher.js';
import { checkPoints, type PointTrust } from '../replicator/recovery/point-check.js';
import type { GatewayClient } from '../replicator/transport/gateway-client.js';
import { auditLine } from './audit-line.js';
import type { AuditEntry } from './audit-log.js';
import { type Command, controlKeys, type Reply } from './contract.js';
import { appState, unknownApp } from './decide.js';
import type { EngineContext } from './engine-context.js';
import { engineGateway } from './engine-gateway.js';
import { explainCommand, explanationLines, parseWords } from './explain-command.js';
import type { Identity } from './identity.js';
import { readPlanStatus } from './read-plan-status.js';
import { publishedStates, statusLines } from './status-lines.js';

/**
 * status [app|plan]: replication state as the gateway last published it to Redis; a plan's name
 * gives its apps in order and its last run (read-plan-status.ts).
 */
export async function readStatus(ctx: EngineContext, command: Command): Promise<Reply> {
  if (command.app !== undefined && !ctx.config.apps[command.app])
    return readPlanStatus(ctx, command.app);
  const raw = await ctx.redis.hgetall(replicationKey(ctx.prefix));
  const names = command.app
    ? [command.app]
    : [...new Set([...Object.keys(ctx.config.apps), ...Object.keys(raw)])].sort();
  const { rows, lines } = statusLines(ctx, names, publishedStates(raw), command.app !== undefined);
  return {
    ok: true,
    summary: command.app ? `Status of ${command.app}` : `Status of ${names.length} app(s)`,
    details: lines,
    data: rows,
  };
}

/** points <app>: the app's recovery points, from the gateway. */
export async function readPoints(ctx: EngineContext, command: Command): Promise<Reply> {
  const bad = unknownApp(ctx, command.app);
  if (bad) return bad;
  const app = command.app as string;
  let client: GatewayClient | undefined;
  try {
    client = engineGateway(ctx);
    const points = await client.points(app);
    // Where this engine's home holds the key encryption key, each point's signed record and the
    // chain are checked, as `dr points` does; a home without it lists them unchecked.
    const kek = await loadKeyEncryptionKey(homePaths(ctx.home).kek).catch(() => undefined); // no key here: unchecked
    const trust = kek ? checkPoints(kek, app, points) : undefined;
    const lines = points
      .map((p, i) => `#${p.id}  ${p.time}  ${p.label}  ${trustWord(trust?.[i])}`)
      .slice(-20);
    const refused = trust?.filter((t) => t.status === 'bad') ?? [];
    for (const t of refused.slice(-5)) lines.push(`point #${t.id} is REFUSED: ${t.reason}`);
    return {
      ok: true,
      summary: points.length
        ? `${points.length} recovery point(s) of ${app}${points.length > 20 ? ' (newest 20 shown)' : ''}`
        : `No recovery points of ${app} yet`,
      details: lines,
      data: points.map((p, i) => ({ ...p, check: trust?.[i]?.status ?? 'unchecked' })),
    };
  } catch (err) {
    return { ok: false, summary: `Cannot list the points of ${app}: ${errorMessage(err)}` };
  } finally {
    client?.close();
  }
}

/** history [app]: the newest decisions, approvals and operations from the audit log. */
export async function readHistory(ctx: EngineContext, command: Command): Promise<Reply> {
  if (command.app !== undefined) {
    const bad = unknownApp(ctx, command.app);
    if (bad) return bad;
  }
  const entries = await ctx.redis.xrevrange(controlKeys(ctx.prefix).audit, '+', '-', 'COUNT', 500);
  const rows: AuditEntry[] = [];
  for (const [, fields] of entries) {
    const i = fields.indexOf('entry');
    const e = JSON.parse(fields[i + 1] ?? '{}') as AuditEntry;
    if (e.type === 'command') continue;
    const d = e.data as { app?: string } | null;
    if (command.app && d?.app !== command.app) continue;
    rows.push(e);
    if (rows.length >= 20) break;
  }
  const lines = rows.map(auditLine);
  return {
    ok: true,
    summary: `Last ${rows.length} event(s)${command.app ? ` of ${command.app}` : ''}`,
    details: lines,
    data: rows,
  };
}

/** policy list | policy explain <command…>. */
export async function readPolicy(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const set = ctx.policies();
  const problems = ctx.policyProblems();
  if (!set)
    return {
      ok: false,
      summary: 'No valid policy set is loaded',
      details: problems.map((p) => `${p.file}:${p.line}: ${p.reason}`),
    };
  if (command.args.sub !== 'explain') {
    const lines = set.policies.map(
      (p) =>
        `${p.name}  [${p.mode}, ${p.effect.kind}]  ${p.file}:${p.line}${p.description ? `  ${p.description}` : ''}`,
    );
    if (problems.length)
      lines.push(...problems.map((p) => `refused: ${p.file}:${p.line}: ${p.reason}`));
    return {
      ok: true,
      summary: problems.length
        ? `The policy files have ${problems.length} problem(s): every action is denied until they are fixed (alerts of the ${set.policies.length} policies last loaded still run)`
        : `${set.policies.length} policies in force`,
      details: lines,
      data: set.policies.map(({ conditions: _c, ...p }) => p),
    };
  }
  const parsed = parseWords(command.args.words ?? []);
  if (typeof parsed === 'string') return { ok: false, summary: parsed };
  if (parsed.app !== undefined) {
    const bad = unknownApp(ctx, parsed.app);
    if (bad) return bad;
  }
  const e = await explainCommand(
    set,
    ctx.config,
    parsed,
    who,
    await appState(ctx, parsed.app),
    ctx.now(),
    command.surface,
  );
  const [first, ...rest] = explanationLines(e);
  if (problems.length > 0)
    return {
      ok: true,
      summary: `Denied, whatever the policies below say: the policy files have problems (${problems.map((p) => `${p.file}:${p.line}: ${p.reason}`).join('; ')}); every action is denied until they are fixed`,
      details: [first ?? '', ...rest],
      data: e,
    };
  return { ok: true, summary: first ?? '', details: rest, data: e };
}

/** A point's check as `dr points` words it: verified, UNSIGNED, REFUSED, or unchecked without the key. */
function trustWord(t: PointTrust | undefined): string {
  if (!t) return 'unchecked';
  return t.status === 'signed' ? 'verified' : t.status === 'unsigned' ? 'UNSIGNED' : 'REFUSED';
}
