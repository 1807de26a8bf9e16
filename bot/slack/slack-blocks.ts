import type { Notice } from '../../engine/contract.js';
import type { Message } from '../plain-text.js';

/** Block Kit as the Web API takes it (a plain JSON shape; @slack/types is not needed for it). */
export type Block = Record<string, unknown>;

/** Slack's limits: a section's text, a message's blocks. */
const SECTION_LIMIT = 3000;

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
 * A reply or notice as a Slack message: the summary, details inline (`inlineDetails`) or left for
 * the thread, and the actions as buttons whose value is the command they stand for.
 */
export function slackMessage(
  message: Message & { severity?: Notice['severity'] },
  { inlineDetails = true }: { inlineDetails?: boolean } = {},
): { text: string; blocks: Block[] } {
  const summary = `${MARK[message.severity ?? 'info']}${escapeMrkdwn(message.summary)}`;
  const blocks: Block[] = [
    { type: 'section', text: { type: 'mrkdwn', text: cut(summary, SECTION_LIMIT) } },
  ];
  if (inlineDetails && message.details?.length) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: codeBlock(message.details) } });
  }
  const actions = message.actions ?? [];
  if (actions.length > 0) {
    blocks.push({
      type: 'actions',
      block_id: 'dr-actions',
      elements: actions.slice(0, 5).map((a, i) => ({
        type: 'button',
        action_id: `dr:${a.kind}:${i}`,
        text: { type: 'plain_text', text: cut(a.label, 75) },
        value: a.words,
        ...(a.style ? { style: a.style } : {}),
      })),
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
  return { text: cut(escapeMrkdwn(message.summary), SECTION_LIMIT), blocks };
}
