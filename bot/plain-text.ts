import type { Action } from '../engine/contract.js';

/** What every rendering starts from: a reply or a notice. */
export interface Message {
  summary: string;
  details?: string[];
  actions?: Action[];
}

/**
 * A message as plain lines, for the console: details indented, buttons shown as the words to type
 * (`[Approve] approve A-12`).
 */
export function plainText(message: Message, prefix = ''): string {
  const lines = [message.summary];
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
