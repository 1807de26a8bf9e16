// A Slack mention (`@Lifeboat drill shop`): its fields and its words.

/** The fields of an `app_mention` event Lifeboat reads. */
export interface Mention {
  user?: string;
  text?: string;
  channel: string;
  ts: string;
  thread_ts?: string;
}

/** The words of a mention: `<@U0BOT> drill shop` → `drill shop` (every user mention dropped). */
export function mentionText(text: string): string {
  return text
    .replace(/<@[A-Z0-9]+(\|[^>]*)?>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
