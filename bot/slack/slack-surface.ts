// Slack through Bolt: slash commands, mentions and button presses in, replies and notices out.
import { hostname } from 'node:os';
import type { App, BlockAction, ButtonAction, RespondFn, SlashCommand } from '@slack/bolt';
import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import type { HttpRoute } from '../../core/http-route.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { ControlPlane, Notice, Reply } from '../../engine/contract.js';
import type { DrillReport } from '../../engine/drill-report.js';
import { answer } from '../answer.js';
import type { ChatSurface } from '../chat-surface.js';
import { firstDelivery } from '../first-delivery.js';
import { MessageMap } from '../message-map.js';
import { NoticeReader } from '../notice-reader.js';
import { WorkQueue } from '../work-queue.js';
import { boltLogger } from './bolt-logger.js';
import { type Mention, mentionText } from './mention-text.js';
import { codeBlock, escapeMrkdwn, slackMessage } from './slack-blocks.js';
import type { SlackCredentials } from './slack-credentials.js';
import {
  SLACK_BODY_LIMIT,
  type SlackVerdict,
  slackEventsRoute,
  slackVerifier,
} from './slack-events-route.js';
import { postSlackReport } from './slack-report.js';
import { slackStartError } from './slack-start-error.js';
import { withRetryAfter } from './with-retry-after.js';

export interface SlackSurfaceOptions {
  plane: ControlPlane;
  credentials: SlackCredentials;
  /** Commands: delivery ids, signatures seen, which message shows which operation. */
  redis: Redis;
  /** A connection of its own for reading notices (it blocks); without it no notices are shown. */
  noticeRedis?: Redis;
  prefix?: string;
  /** The slash command, `/dr` by default. */
  command?: string;
  log?: Logger;
  now?: () => number;
}

/**
 * Slack through Bolt: `/dr …` slash commands, `@Lifeboat …` mentions and button presses in,
 * replies and notices out.
 * Every request is acknowledged first (Slack's 3-second rule); the control plane's work follows.
 */
export class SlackSurface implements ChatSurface {
  readonly name = 'slack';
  /** `/slack/events` for `dr serve`'s HTTP server; undefined in Socket Mode. */
  readonly route: HttpRoute | undefined;
  readonly routes: HttpRoute[];
  private readonly map: MessageMap;
  private readonly base: string;
  private readonly log: Logger;
  private reader: NoticeReader | undefined;
  private readonly work: WorkQueue;

  private constructor(
    private readonly app: App,
    private readonly o: SlackSurfaceOptions,
    http:
      | {
          listener: (
            req: import('node:http').IncomingMessage,
            res: import('node:http').ServerResponse,
          ) => void;
          verify: (req: import('node:http').IncomingMessage) => Promise<SlackVerdict>;
        }
      | undefined,
  ) {
    this.log = (o.log ?? silentLog).child({ surface: 'slack' });
    this.base = `${o.prefix ?? 'lifeboat:'}bot:slack:`;
    this.map = new MessageMap(o.redis, `${this.base}msg:`);
    this.work = new WorkQueue(4, this.log);
    this.route = http
      ? slackEventsRoute({
          ...http,
          redis: o.redis,
          base: `${this.base}sig:`,
          log: this.log,
          ...(o.now ? { now: o.now } : {}),
        })
      : undefined;
    this.routes = this.route ? [this.route] : [];
    this.listen();
  }

  /** Builds the Bolt app (loaded here, so `dr` commands without Slack never load Bolt). */
  static async create(o: SlackSurfaceOptions): Promise<SlackSurface> {
    const bolt = await import('@slack/bolt');
    const { credentials: c } = o;
    const logger = boltLogger((o.log ?? silentLog).child({ surface: 'slack', part: 'bolt' }));
    const clientOptions = {
      slackApiUrl: c.apiUrl,
      // Rate limits are waited out by withRetryAfter, where the wait is logged and bounded.
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 2000 },
    };
    if (c.mode === 'socket') {
      const receiver = new bolt.SocketModeReceiver({
        appToken: c.appToken,
        logger,
        installerOptions: { clientOptions: { slackApiUrl: c.apiUrl } },
      });
      const app = new bolt.App({
        token: c.botToken,
        receiver,
        socketMode: true,
        logger,
        clientOptions,
        convoStore: false,
        deferInitialization: true,
      });
      return new SlackSurface(app, o, undefined);
    }
    const receiver = new bolt.HTTPReceiver({
      signingSecret: c.signingSecret,
      endpoints: '/slack/events',
      logger,
      processBeforeResponse: false,
      bodyLimit: SLACK_BODY_LIMIT,
    });
    const app = new bolt.App({
      token: c.botToken,
      receiver,
      logger,
      clientOptions,
      convoStore: false,
      deferInitialization: true,
    });
    return new SlackSurface(app, o, {
      listener: receiver.requestListener,
      verify: slackVerifier(bolt, c.signingSecret, o.now),
    });
  }

  /** Checks the bot token (auth.test), connects Socket Mode if chosen, starts showing notices. */
  async start(): Promise<void> {
    try {
      await this.app.init();
    } catch (err) {
      throw slackStartError(err, this.o.credentials.apiUrl);
    }
    if (this.o.credentials.mode === 'socket') await this.app.start();
    if (this.o.noticeRedis) {
      this.reader = new NoticeReader({
        redis: this.o.noticeRedis,
        ...(this.o.prefix ? { prefix: this.o.prefix } : {}),
        group: 'bot:slack',
        consumer: `${hostname()}:${process.pid}`,
        accepts: (n) => n.targets.some((t) => t.startsWith('slack:')),
        handle: (n) => this.postNotice(n),
        log: this.log,
      });
      await this.reader.start();
    }
  }

  async stop(): Promise<void> {
    await this.reader?.close();
    // Commands already acked get up to 10 s to finish; a stuck one does not hold the shutdown.
    await Promise.race([this.work.drained(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (this.o.credentials.mode === 'socket') await this.app.stop();
  }

  private listen(): void {
    const command = this.o.command ?? '/dr';
    this.app.command(command, async ({ command: c, ack, respond }) => {
      await ack();
      this.work.push(() => this.onCommand(c, respond));
    });
    this.app.action(/^dr:/, async ({ ack, body, action }) => {
      await ack();
      this.work.push(() => this.onPress(body as BlockAction, action as ButtonAction));
    });
    // Bolt acknowledges events itself, before the listener runs.
    this.app.event('app_mention', async ({ event, body }) => {
      const eventId = (body as { event_id?: string }).event_id ?? `${event.channel}:${event.ts}`;
      this.work.push(() => this.onMention(event as Mention, eventId));
    });
    this.app.error(async (err) => {
      this.log.error({ err: errorMessage(err) }, 'Slack listener failed');
    });
  }

  private async onCommand(c: SlashCommand, respond: RespondFn): Promise<void> {
    if (!(await firstDelivery(this.o.redis, `${this.base}delivery:${c.trigger_id}`))) {
      this.log.info({ trigger: c.trigger_id }, 'redelivered slash command ignored');
      return;
    }
    const reply = await answer(
      this.o.plane,
      {
        text: c.text,
        actor: `slack:${c.user_id}`,
        surface: 'slack',
        channel: `slack:${c.channel_id}`,
        id: `slack:${c.trigger_id}`,
      },
      { log: this.log, ...(this.o.now ? { now: this.o.now } : {}) },
    );
    await this.guard('reply', () => this.replyToCommand(reply, c.channel_id, respond));
  }

  /**
   * `@Lifeboat drill shop` in a channel: the same words as `/dr drill shop`.
   * Refusals and help go to the asker alone, operations get their own
   * message, anything else is answered in the mention's thread.
   */
  private async onMention(m: Mention, eventId: string): Promise<void> {
    if (!(await firstDelivery(this.o.redis, `${this.base}delivery:${eventId}`))) {
      this.log.info({ event: eventId }, 'redelivered mention ignored');
      return;
    }
    if (!m.user) return; // a message without a person behind it (a bot's): nothing to answer
    const reply = await answer(
      this.o.plane,
      {
        text: mentionText(m.text ?? ''),
        actor: `slack:${m.user}`,
        surface: 'slack',
        channel: `slack:${m.channel}`,
        id: `slack:${eventId}`,
      },
      { log: this.log, ...(this.o.now ? { now: this.o.now } : {}) },
    );
    await this.guard('reply', async () => {
      if (!reply.ok || reply.private) {
        const user = m.user as string;
        await this.call('chat.postEphemeral', () =>
          this.app.client.chat.postEphemeral({ channel: m.channel, user, ...slackMessage(reply) }),
        );
      } else if (reply.report) await this.postReport(m.channel, reply.report, reply.summary);
      else if (reply.thread) await this.replyAsOperation(reply, reply.thread, m.channel);
      else await this.post(m.channel, slackMessage(reply), m.thread_ts ?? m.ts);
    });
  }

  private async onPress(press: BlockAction, button: ButtonAction): Promise<void> {
    const delivery = press.trigger_id || `${press.container?.message_ts}:${button.action_ts}`;
    if (!(await firstDelivery(this.o.redis, `${this.base}delivery:${delivery}`))) {
      this.log.info({ delivery }, 'redelivered button press ignored');
      return;
    }
    const channel = press.channel?.id ?? press.container?.channel_id;
    const reply = await answer(
      this.o.plane,
      {
        text: button.value ?? '',
        actor: `slack:${press.user.id}`,
        surface: 'slack',
        ...(channel ? { channel: `slack:${channel}` } : {}),
        id: `slack:${delivery}`,
      },
      { log: this.log, ...(this.o.now ? { now: this.o.now } : {}) },
    );
    // The card itself changes through the engine's notices; the presser hears back privately.
    if (channel) {
      await this.guard('ephemeral', () =>
        this.call('chat.postEphemeral', () =>
          this.app.client.chat.postEphemeral({
            channel,
            user: press.user.id,
            ...slackMessage(reply),
          }),
        ),
      );
    }
  }

  /** A refusal or help only for the asker; an operation as its own message; the rest in the channel. */
  private async replyToCommand(reply: Reply, channel: string, respond: RespondFn): Promise<void> {
    if (!reply.ok || reply.private) {
      await respond({ response_type: 'ephemeral', ...slackMessage(reply) });
      return;
    }
    if (reply.report) await this.postReport(channel, reply.report, reply.summary);
    else if (reply.thread) await this.replyAsOperation(reply, reply.thread, channel);
    else await respond({ response_type: 'in_channel', ...slackMessage(reply) });
  }

  /** An operation's reply: its own message (shared with its notices), details in its thread. */
  private async replyAsOperation(reply: Reply, thread: string, channel: string): Promise<void> {
    const msg = slackMessage(reply, { inlineDetails: false, now: (this.o.now ?? Date.now)() });
    const { ref, created } = await this.map.upsert(
      `slack:${channel}`,
      thread,
      0,
      () => this.post(channel, msg),
      async () => undefined, // a notice got there first and shows newer state
    );
    if (created && reply.details?.length)
      await this.post(channel, this.detailsOf(reply.details), ref);
  }

  /** A notice: one message per key and channel, updated in place; details in its thread. */
  async postNotice(notice: Notice): Promise<void> {
    if (notice.report) {
      for (const target of notice.targets)
        if (target.startsWith('slack:'))
          await this.postReport(target.slice('slack:'.length), notice.report, notice.summary);
      return;
    }
    const inline = notice.detailsInMessage === true;
    const msg = slackMessage(notice, { inlineDetails: inline, now: (this.o.now ?? Date.now)() });
    for (const target of notice.targets) {
      if (!target.startsWith('slack:')) continue;
      const channel = target.slice('slack:'.length);
      const { ref, changed } = await this.map.upsert(
        target,
        notice.key,
        notice.time,
        () => this.post(channel, msg),
        (ts) => this.update(channel, ts, msg),
      );
      if (changed && !inline && notice.details?.length)
        await this.post(channel, this.detailsOf(notice.details), ref);
    }
  }

  async updateMessage(target: string, ref: string, notice: Notice): Promise<void> {
    const msg = slackMessage(notice, {
      inlineDetails: notice.detailsInMessage === true,
      now: (this.o.now ?? Date.now)(),
    });
    await this.update(target.replace(/^slack:/, ''), ref, msg);
  }

  /** An approval card is a notice with Approve / Reject buttons; pressing one comes back as words. */
  askApproval(notice: Notice): Promise<void> {
    return this.postNotice(notice);
  }

  private async update(
    channel: string,
    ts: string,
    msg: { text: string; blocks: unknown[] },
  ): Promise<void> {
    await this.call('chat.update', () =>
      this.app.client.chat.update({ channel, ts, text: msg.text, blocks: msg.blocks as never }),
    );
  }

  private detailsOf(details: string[]) {
    return {
      text: escapeMrkdwn(details.join('\n')),
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: codeBlock(details) } }],
    };
  }

  private async post(
    channel: string,
    msg: { text: string; blocks: unknown[] },
    threadTs?: string,
  ): Promise<string> {
    const res = await this.call('chat.postMessage', () =>
      this.app.client.chat.postMessage({
        channel,
        text: msg.text,
        blocks: msg.blocks as never,
        ...(threadTs ? { thread_ts: threadTs } : {}),
      }),
    );
    if (!res.ts) throw new Error(`chat.postMessage to ${channel} returned no ts`);
    return res.ts;
  }

  /** A drill report: its picture uploaded into the channel, or its summary saying why not. */
  private async postReport(channel: string, report: DrillReport, text: string): Promise<void> {
    const posted = await postSlackReport(
      this.app.client,
      (m, fn) => this.call(m, fn),
      channel,
      report,
      text,
    );
    if (!posted.picture)
      this.log.warn(
        { channel, why: posted.why },
        'drill report posted as text, without its picture',
      );
  }

  private call<T>(method: string, fn: () => Promise<T>): Promise<T> {
    return withRetryAfter(method, fn, { log: this.log });
  }

  /** After the ack nobody is waiting for an answer: a failure is logged, never thrown into Bolt. */
  private async guard(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.error({ err: errorMessage(err), what }, 'Slack call failed');
    }
  }
}
