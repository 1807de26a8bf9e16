import type { Action } from '../engine/contract.js';
import { cardOf, cardTextLines } from './card-lines.js';

/** What every rendering starts from: a reply or a notice. */
export interface Message {
  summary: string;
  details?: string[];
  actions?: Action[];
  /** The machine form; an approval card's facts travel here as `card`. */
  data?: unknown;
}

/**
 * A message as plain lines, for the console: an approval card's facts and the details indented,
 * buttons shown as the words to type (`[Approve] approve A-12`).
 */
export function plainText(message: Message, prefix = '', now = Date.now()): string {
  const lines = [message.summary];
  const card = cardOf(message.data);
  if (card) for (const l of cardTextLines(card, now)) lines.push(`  ${l}`);
  for (const d of message.details ?? []) lines.push(`  ${d}`);
  const actions = message.actions ?? [];
  if (actions.length > 0) {
    lines.push(`  ${actions.map((a) => `[${a.label}] ${prefix}${a.words}`).join('   ')}`);
  }
  return lines.join('\n');
}

/** Control characters out (terminal escapes in an engine string must not reach a terminal). */
export function printable(text: string): string {
  return [...text].map((c) => (/[\p{Cc}]/u.test(c) && c !== '\n' ? '?' : c)).join('');
}
