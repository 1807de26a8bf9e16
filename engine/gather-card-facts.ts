/** The facts an approver decides from, gathered by the engine and rendered by every surface. */
import { replicationKey } from '../replicator/gateway/state-publisher.js';
import type { AppStatus } from '../replicator/transport/wire-types.js';
import type { AlertRecord } from './alert-store.js';
import type { ApprovalRecord } from './approval-store.js';
import type { ApprovalState } from './contract.js';
import type { EngineContext } from './engine-context.js';
import { type LastRun, lastRuns } from './last-runs.js';

/** An agent not heard for longer than this counts as silent on the card (and for staleness). */
export const AGENT_SILENT_MS = 30_000;
/** A card whose facts are older than this says when they were taken. */
export const CARD_FRESH_MS = 60_000;

/**
 * Everything an approval card shows, as plain data: the engine gathers it when the approval is
 * created and again whenever it changes; bot/ only formats it. Times are ms since epoch or ISO.
 */
export interface CardFacts {
  kind: 'approval-card';
  /** When these facts were read. */
  takenAt: number;
  verb: 'drill' | 'failover' | 'failback';
  app: string;
  tier: string;
  opId: string;
  approvalId: string;
  /** The person who asked, and why (`--reason`). */
  requestedBy: string;
  reason?: string;
  source: SourceFacts;
  /** The point a drill or failover would use; failback writes the DR copy back and uses none. */
  point?: PointFacts;
  /** Writes on the source that the point does not hold; absent without a point. */
  dataLoss?: {
    seconds: number;
    basis: 'agent-last-heard' | 'point-age';
    /** With `agent-last-heard`: the changed bytes the agent last reported as not yet shipped. */
    backlogBytes?: number;
  };
  lastDrill?: LastRun;
  /** From the newest successful run that measured one (for failback: the last failback's downtime). */
  expectedRto?: { ms: number; from: 'drill' | 'failover' | 'failback'; at: number };
  /** Failover fences the source first when the app has a `fence` command. */
  fence: { applies: boolean; command?: string };
  approvals: { names: string[]; required: number; groups: string[] };
  status: ApprovalState['status'];
  expiresAt: string;
  /** The facts that decide whether a press may count: a change means the card is stale. */
  fingerprint: string;
}

export interface SourceFacts {
  /** Replication phase as the gateway last published it; absent when it never published. */
  phase?: string;
  reason?: string;
  agentHost?: string;
  /** Seconds since the gateway last heard the agent; absent when it never did. */
  heartbeatAgeSeconds?: number;
  /** How old the gateway's published state is (it publishes every second while it runs). */
  stateAgeSeconds?: number;
  alerts: { id: string; kind: AlertRecord['kind']; sinceSeconds: number; ackedBy?: string }[];
}

export interface PointFacts {
  /** `latest`: the newest consistent point when the job starts; `given`: `--point`. */
  chosen: 'latest' | 'given';
  id?: number;
  label?: string;
  time?: string;
  ageSeconds?: number;
  /** Whether the gateway's published state names this point (a given id older than the newest is not named). */
  known: boolean;
}

/** What the fingerprint keeps: the point the operation would use and the source's state. */
function fingerprintOf(f: Pick<CardFacts, 'source' | 'point'>): string {
  const s = f.source;
  const agent =
    s.heartbeatAgeSeconds === undefined
      ? 'never'
      : s.heartbeatAgeSeconds * 1000 > AGENT_SILENT_MS
        ? 'silent'
        : 'heard';
  const p = f.point;
  const point = !p
    ? '-'
    : p.chosen === 'latest'
      ? `latest:${p.id === undefined ? 'none' : 'some'}`
      : `${p.id}:${p.known ? (p.label ?? '') : 'unknown'}`;
  return JSON.stringify({
    point,
    phase: s.phase ?? 'none',
    agent,
    alerts: s.alerts.map((a) => a.id).sort(),
  });
}

/** The differences between two fingerprints, in words: `source: agent heard → silent`. */
export function fingerprintChanges(before: string, after: string): string[] {
  let a: Record<string, unknown>;
  let b: Record<string, unknown>;
  try {
    a = JSON.parse(before) as Record<string, unknown>;
    b = JSON.parse(after) as Record<string, unknown>;
  } catch {
    return ['the facts were taken by an older version'];
  }
  const out: string[] = [];
  const words: Record<string, string> = {
    point: 'point',
    phase: 'replication',
    agent: 'agent',
    alerts: 'open alerts',
  };
  for (const k of Object.keys(words)) {
    const x = JSON.stringify(a[k] ?? null);
    const y = JSON.stringify(b[k] ?? null);
    if (x !== y) out.push(`${words[k]}: ${shown(a[k])} → ${shown(b[k])}`);
  }
  return out;
}

function shown(v: unknown): string {
  if (Array.isArray(v)) return v.length ? v.join(', ') : 'none';
  return v === undefined || v === null ? '-' : String(v);
}

/**
 * Reads the card's facts for an approval from Redis (replication state, alerts, last runs) and
 * the config (tier, fence). Never throws for state it cannot read: that fact is shown as unknown.
 */
export async function gatherCardFacts(
  ctx: Pick<EngineContext, 'redis' | 'prefix' | 'config' | 'alerts' | 'now'>,
  a: Pick<
    ApprovalRecord,
    | 'id'
    | 'opId'
    | 'verb'
    | 'app'
    | 'requestedBy'
    | 'requestedPerson'
    | 'required'
    | 'groups'
    | 'approvals'
    | 'status'
    | 'expiresAt'
    | 'args'
    | 'reason'
  >,
): Promise<CardFacts> {
  const now = ctx.now();
  const appConfig = ctx.config.apps[a.app];
  const [raw, runs, rpoAlert, silentAlert] = await Promise.all([
    ctx.redis.hget(replicationKey(ctx.prefix), a.app),
    lastRuns(ctx, a.app),
    ctx.alerts.open('rpo', a.app),
    ctx.alerts.open('agent-silent', a.app),
  ]);
  const status = parseStatus(raw);
  const age = (iso: string | undefined) => {
    const t = iso === undefined ? Number.NaN : Date.parse(iso);
    return Number.isFinite(t) ? Math.max(0, (now - t) / 1000) : undefined;
  };

  const source: SourceFacts = {
    alerts: [rpoAlert, silentAlert]
      .filter((x): x is AlertRecord => x !== undefined && x.resolvedAt === undefined)
      .map((x) => ({
        id: x.id,
        kind: x.kind,
        sinceSeconds: Math.max(0, (now - x.raisedAt) / 1000),
        ...(x.ackedBy ? { ackedBy: x.ackedBy } : {}),
      })),
  };
  if (status) {
    source.phase = status.phase;
    if (status.reason) source.reason = status.reason;
    const heard = age(status.agent?.lastSeen);
    if (status.agent) source.agentHost = status.agent.host;
    if (heard !== undefined) source.heartbeatAgeSeconds = heard;
    const published = age(status.publishedAt);
    if (published !== undefined) source.stateAgeSeconds = published;
  }

  let point: PointFacts | undefined;
  let dataLoss: CardFacts['dataLoss'];
  if (a.verb !== 'failback') {
    const given = a.args.point;
    const named =
      given === undefined
        ? (status?.lastConsistentPoint ?? undefined)
        : [status?.lastConsistentPoint, status?.lastPoint].find((p) => p?.id === given);
    point = { chosen: given === undefined ? 'latest' : 'given', known: named !== undefined };
    if (given !== undefined) point.id = given;
    if (named) {
      point.id = named.id;
      point.label = named.label;
      point.time = named.time;
      const pa = age(named.time);
      if (pa !== undefined) point.ageSeconds = pa;
      const pointMs = Date.parse(named.time);
      const heardMs = status?.agent ? Date.parse(status.agent.lastSeen) : Number.NaN;
      // The agent was heard after the point: the source wrote at least until then, and those
      // writes are not in the point. Otherwise the point's age is the honest bound.
      if (Number.isFinite(heardMs) && heardMs > pointMs)
        dataLoss = {
          seconds: (heardMs - pointMs) / 1000,
          basis: 'agent-last-heard',
          ...(typeof status?.backlogBytes === 'number' && status.backlogBytes > 0
            ? { backlogBytes: status.backlogBytes }
            : {}),
        };
      else if (pa !== undefined) dataLoss = { seconds: pa, basis: 'point-age' };
    }
  }

  const facts: Omit<CardFacts, 'fingerprint'> = {
    kind: 'approval-card',
    takenAt: now,
    verb: a.verb,
    app: a.app,
    tier: appConfig?.tier ?? 'unknown',
    opId: a.opId,
    approvalId: a.id,
    requestedBy: a.requestedPerson,
    ...(a.reason ? { reason: a.reason } : {}),
    source,
    ...(point ? { point } : {}),
    ...(dataLoss ? { dataLoss } : {}),
    ...(runs.drill ? { lastDrill: runs.drill } : {}),
    ...expectedRto(a.verb, runs),
    fence: fenceOf(a.verb, appConfig),
    approvals: {
      names: a.approvals.map((x) => x.person),
      required: a.required,
      groups: a.groups,
    },
    status: a.status,
    expiresAt: a.expiresAt,
  };
  return { ...facts, fingerprint: fingerprintOf(facts) };
}

/** The card with the approval's progress as it is now (presses change it; the other facts stay). */
export function withProgress(
  card: CardFacts,
  a: Pick<ApprovalRecord, 'approvals' | 'status' | 'required' | 'groups' | 'expiresAt'>,
): CardFacts {
  return {
    ...card,
    approvals: { names: a.approvals.map((x) => x.person), required: a.required, groups: a.groups },
    status: a.status,
    expiresAt: a.expiresAt,
  };
}

function parseStatus(raw: string | null): (AppStatus & { publishedAt?: string }) | undefined {
  if (raw === null) return undefined;
  try {
    const s = JSON.parse(raw) as AppStatus & { publishedAt?: string };
    return s && typeof s === 'object' ? s : undefined;
  } catch {
    return undefined; // not a state we can read: the card says the source's state is unknown
  }
}

function expectedRto(
  verb: CardFacts['verb'],
  runs: Partial<Record<'drill' | 'failover' | 'failback', LastRun>>,
): Pick<CardFacts, 'expectedRto'> {
  const from: ('drill' | 'failover' | 'failback')[] =
    verb === 'failback' ? ['failback'] : ['drill', 'failover'];
  let best: CardFacts['expectedRto'];
  for (const job of from) {
    const r = runs[job];
    if (!r?.ok || r.rtoMs === undefined) continue;
    if (!best || r.at > best.at) best = { ms: r.rtoMs, from: job, at: r.at };
  }
  return best ? { expectedRto: best } : {};
}

/** The app's fence command, where its config has one (a failover runs it before promoting). */
function fenceOf(verb: CardFacts['verb'], app: unknown): CardFacts['fence'] {
  if (verb !== 'failover') return { applies: false };
  const fence = (app as { fence?: unknown } | undefined)?.fence;
  return typeof fence === 'string' && fence.trim() !== ''
    ? { applies: true, command: fence.trim() }
    : { applies: true };
}
