// Slack's chat API family as the emulator answers it: `chat.postMessage` (a thread must exist),
// `chat.update` (the message must exist; updates are counted) and `chat.postEphemeral`.
import type { SlackCall, SlackMessage } from './slack-web-api.js';
import { type Answer, blocksOf, ok, str } from './slack-wire.js';

export class SlackChat {
  /**
   * `messages` by `channel/ts` and `ephemerals` are the emulator's, for tests to read; `nextSeq`
   * numbers timestamps, shared with the emulator's other ids.
   */
  constructor(
    private readonly messages: Map<string, SlackMessage>,
    private readonly ephemerals: SlackCall[],
    private readonly nextSeq: () => number,
  ) {}

  postMessage(args: Record<string, unknown>): Answer {
    const channel = str(args.channel);
    if (!channel) return ok({ ok: false, error: 'channel_not_found' });
    if (!str(args.text) && !args.blocks) return ok({ ok: false, error: 'no_text' });
    const ts = `${Math.floor(Date.now() / 1000)}.${String(this.nextSeq()).padStart(6, '0')}`;
    const threadTs = str(args.thread_ts);
    if (threadTs && !this.messages.has(`${channel}/${threadTs}`))
      return ok({ ok: false, error: 'thread_not_found' });
    this.messages.set(`${channel}/${ts}`, {
      channel,
      ts,
      text: str(args.text) ?? '',
      blocks: blocksOf(args.blocks),
      updates: 0,
      ...(threadTs ? { threadTs } : {}),
    });
    return ok({ ok: true, channel, ts, message: { text: args.text } });
  }

  update(args: Record<string, unknown>): Answer {
    const channel = str(args.channel);
    const ts = str(args.ts);
    const m = channel && ts ? this.messages.get(`${channel}/${ts}`) : undefined;
    if (!m) return ok({ ok: false, error: 'message_not_found' });
    m.text = str(args.text) ?? m.text;
    if (args.blocks) m.blocks = blocksOf(args.blocks);
    m.updates++;
    return ok({ ok: true, channel, ts, text: m.text });
  }

  postEphemeral(method: string, args: Record<string, unknown>): Answer {
    if (!str(args.channel) || !str(args.user)) return ok({ ok: false, error: 'invalid_arguments' });
    this.ephemerals.push({ method, args, at: Date.now() });
    return ok({
      ok: true,
      message_ts: `${Math.floor(Date.now() / 1000)}.${String(this.nextSeq()).padStart(6, '0')}`,
    });
  }
}
