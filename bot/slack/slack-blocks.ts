import type { Button, ContextBlock, KnownBlock, SectionBlock } from '@slack/types';
import type { Action, Notice } from '../../engine/contract.js';
import type { CardFacts } from '../../engine/gather-card-facts.js';
import { cardFields, cardOf, cardTitle, factsAge } from '../card-lines.js';
import type { Message } from '../plain-text.js';

/** Block Kit as the Web API takes it, checked against Slack's own types (@slack/types). */
export type Block = KnownBlock;

/** Slack's limits: a section's text, a field's text, fields per section, a message's blocks. */
const SECTION_LIMIT = 3000;
const FIELD_LIMIT = 2000;
const FIELDS = 10;
const BLOCKS = 50;

/** Text is shown as typed: Slack's three control characters are escaped. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(text: string, limit: number): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

const MARK: Record<Notice['severity'], string> = {
  info: '',
  warning: ':warning: ',
  critical: ':rotating_light: ',
};

/** Monospace lines, cut to fit one section. */
export function codeBlock(lines: string[]): string {
  return `\`\`\`${cut(escapeMrkdwn(lines.join('\n')), SECTION_LIMIT - 8)}\`\`\``;
}

/**
 * A reply or notice as a Slack message: the summary, an approval card's facts as fields (when the
 * data carries a card), details inline (`inlineDetails`) or left for the thread, and the actions
 * as buttons whose value is the command they stand for; destructive ones ask first.
 */
export function slackMessage(
  message: Message & { severity?: Notice['severity'] },
  { inlineDetails = true, now = Date.now() }: { inlineDetails?: boolean; now?: number } = {},
): { text: string; blocks: Block[] } {
  const summary = `${MARK[message.severity ?? 'info']}${escapeMrkdwn(message.summary)}`;
  const card = cardOf(message.data);
  const blocks: Block[] = card
    ? cardBlocks(card, summary, now)
    : [{ type: 'section', text: { type: 'mrkdwn', text: cut(summary, SECTION_LIMIT) } }];
  if (inlineDetails && message.details?.length) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: codeBlock(message.details) } });
  }
  const actions = message.actions ?? [];
  if (actions.length > 0) {
    blocks.push({
      type: 'actions',
      block_id: 'dr-actions',
      elements: actions.slice(0, 5).map((a, i) => button(a, i)),
    });
    blocks.push({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `or type ${actions.map((a) => `\`/dr ${escapeMrkdwn(a.words)}\``).join(', ')}`,
        },
      ],
    });
  }
  // The top-level text is mrkdwn too (notifications, clients without blocks): escaped the same,
  // so `<!channel>` typed into a reason shows as typed and pings nobody.
  return {
    text: cut(escapeMrkdwn(message.summary), SECTION_LIMIT),
    blocks: blocks.slice(0, BLOCKS),
  };
}

/** The title and the status line, the facts as fields, and who, what and when in small print. */
function cardBlocks(card: CardFacts, summary: string, now: number): Block[] {
  const head: SectionBlock = {
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: cut(`*${escapeMrkdwn(cardTitle(card))}*\n${summary}`, SECTION_LIMIT),
    },
  };
  const fields: SectionBlock = {
    type: 'section',
    fields: cardFields(card, now)
      .slice(0, FIELDS)
      .map((f) => ({
        type: 'mrkdwn' as const,
        text: cut(`*${f.label}*\n${escapeMrkdwn(f.value)}`, FIELD_LIMIT),
      })),
  };
  const age = factsAge(card, now);
  const small: ContextBlock = {
    type: 'context',
    elements: [
      { type: 'mrkdwn', text: `${card.approvalId} · ${card.opId}` },
      ...(age ? [{ type: 'mrkdwn' as const, text: `:hourglass: ${escapeMrkdwn(age)}` }] : []),
    ],
  };
  return [head, fields, small];
}

/** A button whose value is the command it stands for; with a confirm dialog where the engine asks for one. */
function button(a: Action, i: number): Button {
  return {
    type: 'button',
    action_id: `dr:${a.kind}:${i}`,
    text: { type: 'plain_text', text: cut(a.label, 75) },
    value: a.words,
    ...(a.style ? { style: a.style } : {}),
    ...(a.confirm
      ? {
          confirm: {
            title: { type: 'plain_text', text: cut(a.confirm.title, 100) },
            text: { type: 'plain_text', text: cut(a.confirm.text, 300) },
            confirm: { type: 'plain_text', text: cut(a.confirm.yes, 30) },
            deny: { type: 'plain_text', text: 'Go back' },
            ...(a.style === 'danger' ? { style: 'danger' as const } : {}),
          },
        }
      : {}),
  };
}
