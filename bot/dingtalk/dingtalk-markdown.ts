import type { Notice } from '../../engine/contract.js';
import type { Message } from '../plain-text.js';
import type { CardParams } from './dingtalk-api.js';

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

/** A reply or notice as robot markdown; buttons become the words to send (`dr approve A-12`). */
export function dingTalkMarkdown(m: Message & { severity?: Notice['severity'] }): {
  title: string;
  text: string;
} {
  const actions = m.actions?.length
    ? `\n\n${m.actions.map((a) => `${a.label}: \`dr ${a.words}\``).join('  \n')}`
    : '';
  return {
    title: cut(m.summary, 60),
    text: cut(
      `${MARK[m.severity ?? 'info']}${escapeMarkdown(m.summary)}${detailsOf(m.details)}${actions}`,
      LIMIT,
    ),
  };
}

/** A reply or notice as our card template's variables. */
export function cardParams(m: Message & { severity?: Notice['severity'] }): CardParams {
  return {
    title: 'Lifeboat',
    summary: cut(`${MARK[m.severity ?? 'info']}${m.summary}`, 500),
    details: cut(detailsOf(m.details).trim(), LIMIT),
    severity: m.severity ?? 'info',
    actions: JSON.stringify(
      (m.actions ?? []).map((a) => ({
        label: a.label,
        words: a.words,
        style: a.style ?? 'default',
      })),
    ),
  };
}
