/** An approval card's facts as labelled lines of text, which each surface lays out its own way. */
import { formatBytes, formatDuration } from '../core/units.js';
import { CARD_FRESH_MS, type CardFacts } from '../engine/gather-card-facts.js';

/** One fact: a short label and its value in plain words (surfaces escape it for their markup). */
export interface CardField {
  label: string;
  value: string;
}

/**
 * The card carried by a reply's or notice's data (`data.card`), if it has one whose shape this
 * version can show; a card it cannot read (another version's) leaves the message without facts.
 */
export function cardOf(data: unknown): CardFacts | undefined {
  const card = (data as { card?: unknown } | null | undefined)?.card as
    | Partial<Record<keyof CardFacts, unknown>>
    | null
    | undefined;
  if (card === null || typeof card !== 'object' || card.kind !== 'approval-card') return undefined;
  const source = card.source as { alerts?: unknown } | null | undefined;
  const approvals = card.approvals as { names?: unknown; groups?: unknown } | null | undefined;
  const fence = card.fence as object | null | undefined;
  const ok =
    typeof card.takenAt === 'number' &&
    typeof card.app === 'string' &&
    typeof card.verb === 'string' &&
    typeof card.approvalId === 'string' &&
    typeof card.opId === 'string' &&
    typeof card.expiresAt === 'string' &&
    !!source &&
    Array.isArray(source.alerts) &&
    !!approvals &&
    Array.isArray(approvals.names) &&
    Array.isArray(approvals.groups) &&
    !!fence &&
    typeof fence === 'object';
  return ok ? (card as unknown as CardFacts) : undefined;
}

const TITLE = { drill: 'Drill', failover: 'Failover', failback: 'Failback' } as const;

/** `Failover of web (prod)`. */
export function cardTitle(card: CardFacts): string {
  return `${TITLE[card.verb] ?? card.verb} of ${card.app} (${card.tier})`;
}

/** `10:00:05 UTC` for today's times, with the date otherwise. */
export function clock(ms: number, now: number): string {
  const iso = new Date(ms).toISOString();
  const day = iso.slice(0, 10);
  const time = `${iso.slice(11, 19)} UTC`;
  return day === new Date(now).toISOString().slice(0, 10) ? time : `${day} ${time}`;
}

/** A duration in words; under a second is `under 1s`, not `0ms`. */
const span = (seconds: number) => (seconds < 1 ? 'under 1s' : formatDuration(seconds * 1000));
const ago = (seconds: number) => `${span(seconds)} ago`;

/** When the facts were taken, once they are older than a minute; undefined while fresh. */
export function factsAge(card: CardFacts, now: number): string | undefined {
  const old = now - card.takenAt;
  if (old <= CARD_FRESH_MS) return undefined;
  return `Facts as of ${clock(card.takenAt, now)} (${formatDuration(old)} ago)`;
}

/** The card's facts, in the order an approver reads them. Ten at most (Slack's field limit). */
export function cardFields(card: CardFacts, now: number): CardField[] {
  const f: CardField[] = [
    {
      label: 'Asked by',
      value: `${card.requestedBy}${card.reason ? `: "${card.reason}"` : ' (no reason given)'}`,
    },
    { label: 'Source now', value: sourceLine(card) },
  ];
  if (card.point) f.push({ label: 'Point', value: pointLine(card, now) });
  if (card.point)
    f.push({
      label: 'Data loss',
      value: card.dataLoss
        ? card.dataLoss.basis === 'agent-last-heard'
          ? `about ${formatDuration(card.dataLoss.seconds * 1000)} of writes (the agent was heard that long after the point${card.dataLoss.backlogBytes ? `, reporting ${formatBytes(card.dataLoss.backlogBytes)} not yet shipped` : ''})`
          : `up to ${formatDuration(card.dataLoss.seconds * 1000)} of writes (the point's age)`
        : 'unknown: no point to measure from',
    });
  f.push({ label: 'Last drill', value: lastDrillLine(card) });
  f.push({
    label: 'Expected RTO',
    value: card.expectedRto
      ? `${formatDuration(card.expectedRto.ms)} (last ${card.expectedRto.from}, ${ago((card.takenAt - card.expectedRto.at) / 1000)})`
      : `unknown: no ${card.verb === 'failback' ? 'failback' : 'drill or failover'} measured one yet`,
  });
  f.push({ label: 'Fencing', value: fenceLine(card) });
  f.push({ label: 'Approvals', value: approvalsLine(card) });
  f.push({ label: 'Expires', value: expiryLine(card, now) });
  return f;
}

function sourceLine(card: CardFacts): string {
  const s = card.source;
  const parts: string[] = [];
  if (s.phase === undefined) parts.push('no replication state published');
  else parts.push(`replication ${s.phase}${s.reason ? ` (${s.reason})` : ''}`);
  if (s.heartbeatAgeSeconds === undefined) {
    if (s.phase !== undefined) parts.push('agent never heard');
  } else
    parts.push(
      `agent${s.agentHost ? ` on ${s.agentHost}` : ''} heard ${ago(s.heartbeatAgeSeconds)}`,
    );
  if (s.stateAgeSeconds !== undefined && s.stateAgeSeconds > 30)
    parts.push(`gateway state ${formatDuration(s.stateAgeSeconds * 1000)} old`);
  parts.push(
    s.alerts.length === 0
      ? 'no open alerts'
      : `open alerts: ${s.alerts
          .map(
            (a) =>
              `${a.id} ${a.kind === 'rpo' ? 'RPO breach' : 'agent silent'} for ${span(a.sinceSeconds)}${a.ackedBy ? ` (acknowledged by ${a.ackedBy})` : ''}`,
          )
          .join(', ')}`,
  );
  return parts.join('; ');
}

function pointLine(card: CardFacts, now: number): string {
  const p = card.point;
  if (!p) return '-';
  if (p.chosen === 'latest' && p.id === undefined)
    return 'latest, but there is no consistent point yet: it would fail';
  if (!p.known) return `#${p.id} (--point; see \`points ${card.app}\` for its time)`;
  const time = p.time ? Date.parse(p.time) : Number.NaN;
  const when = Number.isFinite(time) ? `, ${clock(time, now)}` : '';
  const age = p.ageSeconds !== undefined ? ` (${formatDuration(p.ageSeconds * 1000)} old)` : '';
  return `${p.chosen === 'latest' ? 'latest: ' : ''}#${p.id} ${p.label ?? ''}${when}${age}`;
}

function lastDrillLine(card: CardFacts): string {
  const d = card.lastDrill;
  if (!d) return 'none recorded';
  const when = ago((card.takenAt - d.at) / 1000);
  return d.ok
    ? `${when}: healthy${d.rtoMs !== undefined ? `, RTO ${formatDuration(d.rtoMs)}` : ''} (${d.opId})`
    : `${when}: failed: ${d.error ?? 'no reason recorded'} (${d.opId})`;
}

function fenceLine(card: CardFacts): string {
  if (card.verb === 'drill') return 'none: a drill never touches the source';
  if (card.verb === 'failback') return 'none: failback writes the DR copy back to the source';
  return card.fence.command
    ? `the source is fenced first: \`${card.fence.command}\``
    : 'not configured: the source is not fenced; stop it before approving';
}

function approvalsLine(card: CardFacts): string {
  const a = card.approvals;
  const who = a.names.length ? `: ${a.names.join(', ')}` : '';
  return `${a.names.length} of ${a.required}${who} (from ${a.groups.join(', ')}, not the requester)`;
}

function expiryLine(card: CardFacts, now: number): string {
  const t = Date.parse(card.expiresAt);
  if (card.status === 'granted') return 'approved';
  if (card.status === 'rejected') return 'rejected';
  if (card.status === 'cancelled') return 'withdrawn';
  if (!Number.isFinite(t)) return card.expiresAt;
  return t <= now || card.status === 'expired'
    ? `expired at ${clock(t, now)}`
    : `${clock(t, now)} (in ${formatDuration(t - now)})`;
}

/** The facts as `Label: value` lines, for the console and the markdown fallback. */
export function cardTextLines(card: CardFacts, now: number): string[] {
  const age = factsAge(card, now);
  return [
    cardTitle(card),
    ...cardFields(card, now).map((x) => `${x.label}: ${x.value}`),
    ...(age ? [age] : []),
  ];
}
