import type { Notice } from '../../engine/contract.js';
import { type CardField, cardFields, cardOf, cardTitle, factsAge } from '../card-lines.js';
import type { Message } from '../plain-text.js';
import type { CardParams } from './dingtalk-api.js';

/**
 * Our card template's variables: the base ones, and an approval card's facts one per variable
 * (empty strings when the message has no card), so the template can lay them out as it likes.
 */
export interface CardVariables extends CardParams {
  /** `1` when the message is an approval card, else empty. */
  isCard: string;
  cardTitle: string;
  askedBy: string;
  sourceNow: string;
  point: string;
  dataLoss: string;
  lastDrill: string;
  expectedRto: string;
  fencing: string;
  approvals: string;
  expires: string;
  /** `Facts as of …` once they are older than a minute. */
  factsAsOf: string;
  /** All the facts as markdown lines, for a template with one text area. */
  facts: string;
}

const VARIABLE: Record<string, keyof CardVariables> = {
  'Asked by': 'askedBy',
  'Source now': 'sourceNow',
  Point: 'point',
  'Data loss': 'dataLoss',
  'Last drill': 'lastDrill',
  'Expected RTO': 'expectedRto',
  Fencing: 'fencing',
  Approvals: 'approvals',
  Expires: 'expires',
};

const MARK: Record<Notice['severity'], string> = { info: '', warning: '⚠️ ', critical: '🚨 ' };
const LIMIT = 4000;

function cut(text: string, limit: number): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/**
 * Links and HTML in engine text (which may carry a person's words, like a reject reason) are shown
 * as typed; backticks stay, as the engine uses them for commands to type.
 */
export function escapeMarkdown(text: string): string {
  return text.replace(/[[\]<>]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function detailsOf(details: string[] | undefined): string {
  return details?.length ? `\n\n${details.map((d) => `    ${d}`).join('\n')}` : '';
}

/** The facts as markdown lines: `**Point**: #12 crash-consistent, …`. */
function factLines(fields: CardField[], age: string | undefined): string {
  return [
    ...fields.map((f) => `**${f.label}**: ${escapeMarkdown(f.value)}`),
    ...(age ? [`*${escapeMarkdown(age)}*`] : []),
  ].join('  \n');
}

/** A reply or notice as robot markdown; buttons become the words to send (`dr approve A-12`). */
export function dingTalkMarkdown(
  m: Message & { severity?: Notice['severity'] },
  now = Date.now(),
): {
  title: string;
  text: string;
} {
  const actions = m.actions?.length
    ? `\n\n${m.actions.map((a) => `${a.label}: \`dr ${a.words}\``).join('  \n')}`
    : '';
  const card = cardOf(m.data);
  const facts = card
    ? `\n\n#### ${escapeMarkdown(cardTitle(card))}\n\n${factLines(cardFields(card, now), factsAge(card, now))}`
    : '';
  return {
    title: cut(m.summary, 60),
    text: cut(
      `${MARK[m.severity ?? 'info']}${escapeMarkdown(m.summary)}${facts}${detailsOf(m.details)}${actions}`,
      LIMIT,
    ),
  };
}

/** A reply or notice as our card template's variables. */
export function cardParams(
  m: Message & { severity?: Notice['severity'] },
  now = Date.now(),
): CardVariables {
  const card = cardOf(m.data);
  const fields = card ? cardFields(card, now) : [];
  const age = card ? factsAge(card, now) : undefined;
  const vars: CardVariables = {
    title: 'Lifeboat',
    summary: cut(`${MARK[m.severity ?? 'info']}${m.summary}`, 500),
    details: cut(detailsOf(m.details).trim(), LIMIT),
    severity: m.severity ?? 'info',
    actions: JSON.stringify(
      (m.actions ?? []).map((a) => ({
        label: a.label,
        words: a.words,
        style: a.style ?? 'default',
        ...(a.confirm ? { confirm: a.confirm } : {}),
      })),
    ),
    isCard: card ? '1' : '',
    cardTitle: card ? cardTitle(card) : '',
    askedBy: '',
    sourceNow: '',
    point: '',
    dataLoss: '',
    lastDrill: '',
    expectedRto: '',
    fencing: '',
    approvals: '',
    expires: '',
    factsAsOf: age ?? '',
    facts: card ? cut(factLines(fields, age), LIMIT) : '',
  };
  for (const f of fields) {
    const k = VARIABLE[f.label];
    if (k) vars[k] = cut(f.value, 1000);
  }
  return vars;
}
