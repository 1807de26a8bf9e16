// DingTalk in stream mode: robot messages and card presses in, replies, cards and markdown out.
import { randomUUID } from 'node:crypto';
import type { DWClient, DWClientDownStream } from 'dingtalk-stream';
import type { Redis } from 'ioredis';
import { DrError, errorMessage } from '../../core/errors.js';
import type { HttpRoute } from '../../core/http-route.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { ControlPlane, Notice, Reply } from '../../engine/contract.js';
import type { DrillReport } from '../../engine/drill-report.js';
import { answer } from '../answer.js';
import type { ChatSurface } from '../chat-surface.js';
import { firstDelivery } from '../first-delivery.js';
import { MessageMap } from '../message-map.js';
import { NoticeReader } from '../notice-reader.js';
import { DingTalkApi, DingTalkApiError, type Space, spaceOf } from './dingtalk-api.js';
import type { DingTalkCredentials } from './dingtalk-credentials.js';
import {
  bounded,
  type CardCallback,
  channelOf,
  isDeliveryId,
  isOurCard,
  privately,
  type RobotMessage,
  stripPrefix,
} from './dingtalk-frames.js';
import { cardParams, dingTalkMarkdown } from './dingtalk-markdown.js';
import { postDingTalkReport } from './dingtalk-report.js';
import { streamClient } from './stream-client.js';
import { StreamWatch } from './stream-watch.js';

export const TOPIC_ROBOT = '/v1.0/im/bot/messages/get';
export const TOPIC_CARD = '/v1.0/card/instances/callback';

export interface DingTalkSurfaceOptions {
  plane: ControlPlane;
  credentials: DingTalkCredentials;
  redis: Redis;
  /** A connection of its own for reading notices; without it no notices are shown. */
  noticeRedis?: Redis;
  prefix?: string;
  /** Where `surface.down` goes when the stream stays down: the admin channels from dr.yaml. */
  adminTargets?: string[];
  /** How long the stream may stay down before the admins are told (60 s). */
  downNoticeAfterMs?: number;
  log?: Logger;
  fetch?: typeof fetch;
  now?: () => number;
}

/**
 * DingTalk in stream mode: robot messages parsed with the chat grammar and answered through their
 * session webhook; operations and alerts as interactive cards (or markdown without a card
 * template), their button presses through the card callback, answered with
 * `socketCallBackResponse`. Deliveries are de-duplicated by message id.
 */
export class DingTalkSurface implements ChatSurface {
  readonly name = 'dingtalk';
  /** Stream mode: nothing to mount. */
  readonly routes: HttpRoute[] = [];
  readonly api: DingTalkApi;
  private readonly map: MessageMap;
  private readonly base: string;
  private readonly log: Logger;
  private reader: NoticeReader | undefined;
  private readonly watch: StreamWatch;

  private constructor(
    private readonly client: DWClient,
    private readonly o: DingTalkSurfaceOptions,
  ) {
    this.log = (o.log ?? silentLog).child({ surface: 'dingtalk' });
    this.base = `${o.prefix ?? 'lifeboat:'}bot:dingtalk:`;
    this.map = new MessageMap(o.redis, `${this.base}msg:`);
    this.api = new DingTalkApi(o.credentials, {
      fetch: o.fetch ?? fetch,
      now: o.now ?? Date.now,
      log: this.log,
    });
    this.watch = new StreamWatch({
      connected: () => client.connected,
      redis: o.redis,
      ...(o.prefix ? { prefix: o.prefix } : {}),
      adminTargets: o.adminTargets ?? [],
      downNoticeAfterMs: o.downNoticeAfterMs ?? 60_000,
      now: o.now ?? Date.now,
      log: this.log,
    });
    const failed = (err: unknown) =>
      this.log.error({ err: errorMessage(err) }, 'DingTalk delivery failed');
    client.registerCallbackListener(TOPIC_ROBOT, (m) => void this.onRobotMessage(m).catch(failed));
    client.registerCallbackListener(TOPIC_CARD, (m) => void this.onCardCallback(m).catch(failed));
  }

  /** Builds the stream client (dingtalk-stream is loaded here, only when DingTalk is on). */
  static async create(o: DingTalkSurfaceOptions): Promise<DingTalkSurface> {
    const { DWClient } = await import('dingtalk-stream');
    const log = (o.log ?? silentLog).child({ surface: 'dingtalk' });
    let lastLogged = 0;
    const onOpenFailed = (err: Error) => {
      // Once a minute at most: the library tries again every second.
      if (Date.now() - lastLogged < 60_000) return;
      lastLogged = Date.now();
      log.warn(
        { err: errorMessage(err) },
        'DingTalk stream gateway refused or unreachable; retrying every second',
      );
    };
    return new DingTalkSurface(streamClient(DWClient, { ...o.credentials, onOpenFailed }), o);
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Connects (the library retries every second until it gets through) and starts showing notices. */
  async start(): Promise<void> {
    await this.checkCredentials();
    void this.client.connect();
    this.watch.start();
    if (this.o.noticeRedis) {
      this.reader = new NoticeReader({
        redis: this.o.noticeRedis,
        ...(this.o.prefix ? { prefix: this.o.prefix } : {}),
        group: 'bot:dingtalk',
        consumer: `${process.pid}:${randomUUID().slice(0, 8)}`,
        accepts: (n) => n.targets.some((t) => t.startsWith('dingtalk:')),
        handle: (n) => this.postNotice(n),
        log: this.log,
      });
      await this.reader.start();
    }
  }

  /** The app's access token, once: wrong credentials fail here, clearly, not in a reconnect loop. */
  private async checkCredentials(): Promise<void> {
    try {
      await this.api.accessToken();
    } catch (err) {
      const refused = err instanceof DingTalkApiError && err.status >= 400 && err.status < 500;
      throw refused
        ? new DrError(
            `DingTalk refused DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET (${err.code})`,
            {
              code: 'config_invalid',
              subject: 'DINGTALK_CLIENT_SECRET',
              remedy:
                "set them to the app's AppKey and AppSecret, or unset them to leave DingTalk off",
              cause: err,
            },
          )
        : new DrError(
            `cannot reach DingTalk's OpenAPI at ${this.o.credentials.apiUrl} (${errorMessage(err)})`,
            {
              code: 'config_invalid',
              subject: 'DINGTALK_API_URL',
              remedy: 'check the network or proxy to DingTalk, or DINGTALK_API_URL',
              cause: err,
            },
          );
    }
  }

  async stop(): Promise<void> {
    this.watch.stop();
    this.client.disconnect();
    await this.reader?.close();
  }

  private async onRobotMessage(frame: DWClientDownStream): Promise<void> {
    const messageId = frame.headers.messageId;
    // Acknowledge at once so the gateway does not push it again; the answer goes by webhook.
    this.client.socketCallBackResponse(messageId, {});
    let m: RobotMessage;
    try {
      m = JSON.parse(frame.data) as RobotMessage;
    } catch {
      this.log.warn({ messageId }, 'robot message is not JSON; ignored');
      return;
    }
    // Checked before anything is written to Redis: a frame not for this robot, or not a message
    // a person sent, leaves no trace.
    const refused = this.refuseRobotMessage(m, m?.msgId || messageId);
    if (refused) {
      this.log.warn({ messageId: bounded(messageId) }, `robot message ignored: ${refused}`);
      return;
    }
    const id = m.msgId || messageId;
    if (!(await this.first(`robot:${id}`))) {
      this.log.info({ msgId: id }, 'redelivered robot message ignored');
      return;
    }
    const person = m.senderStaffId || (m.senderId ? `unknown:${m.senderId}` : 'unknown');
    const channel = channelOf(m);
    const text = m.msgtype && m.msgtype !== 'text' ? '' : (m.text?.content ?? '');
    const reply = await answer(
      this.o.plane,
      {
        text: stripPrefix(text),
        actor: `dingtalk:${person}`,
        surface: 'dingtalk',
        id: `dingtalk:${id}`,
        ...(channel ? { channel } : {}),
      },
      { log: this.log, ...(this.o.now ? { now: this.o.now } : {}) },
    );
    await this.guard('reply', () => this.replyTo(m, reply));
  }

  private async replyTo(m: RobotMessage, reply: Reply): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    const channel = channelOf(m);
    const space = channel ? spaceOf(channel) : undefined;
    if (reply.ok && reply.report && space) {
      await this.postReport(space, reply.report, reply.summary);
      return;
    }
    if (reply.ok && reply.thread && channel && space && this.o.credentials.cardTemplateId) {
      await this.map.upsert(
        channel,
        reply.thread,
        0,
        async () => {
          const outTrackId = `lb-${randomUUID()}`;
          await this.api.createCard(outTrackId, space, cardParams(reply, now));
          return outTrackId;
        },
        async () => undefined, // a notice got there first and shows newer state
      );
      return;
    }
    const md = dingTalkMarkdown(reply, now);
    // In a group, a refusal or help goes to the asker alone, as a private message from the robot.
    if ((reply.private || !reply.ok) && space?.kind === 'group' && m.senderStaffId) {
      await this.api.sendPrivateMarkdown([m.senderStaffId], md.title, md.text);
      return;
    }
    if (m.sessionWebhook && (m.sessionWebhookExpiredTime ?? Number.POSITIVE_INFINITY) > now) {
      await this.api.replyWebhook(m.sessionWebhook, md.title, md.text);
    } else if (space) {
      await this.api.sendMarkdown(space, md.title, md.text);
    }
  }

  private async onCardCallback(frame: DWClientDownStream): Promise<void> {
    const messageId = frame.headers.messageId;
    let cb: CardCallback;
    let words: string | undefined;
    try {
      cb = JSON.parse(frame.data) as CardCallback;
      const content = JSON.parse(cb.content ?? '{}') as {
        cardPrivateData?: { params?: { words?: unknown } };
      };
      const w = content.cardPrivateData?.params?.words;
      words = typeof w === 'string' ? w : undefined;
    } catch {
      this.client.socketCallBackResponse(messageId, {});
      this.log.warn({ messageId }, 'card callback is not JSON; ignored');
      return;
    }
    // Checked before anything is written to Redis: only presses on Lifeboat's own cards count.
    if (!words || !cb.userId || !isOurCard(cb.outTrackId) || !isDeliveryId(messageId)) {
      this.client.socketCallBackResponse(
        messageId,
        privately("That button is not one of Lifeboat's."),
      );
      return;
    }
    if (!(await this.first(`card:${messageId}`))) {
      // Pushed again (our answer was lost, e.g. the stream dropped): answer, but run nothing twice.
      this.client.socketCallBackResponse(messageId, {});
      return;
    }
    const channel = cb.spaceId ? `dingtalk:${cb.spaceId}` : undefined;
    const reply = await answer(
      this.o.plane,
      {
        text: words,
        actor: `dingtalk:${cb.userId}`,
        surface: 'dingtalk',
        id: `dingtalk:${messageId}`,
        ...(channel ? { channel } : {}),
      },
      { log: this.log, ...(this.o.now ? { now: this.o.now } : {}) },
    );
    // The card's shared state changes through the engine's notices; the presser's feedback is private.
    this.client.socketCallBackResponse(messageId, privately(reply.summary));
  }

  /** A notice: one card per key and conversation, updated in place (or markdown without cards). */
  async postNotice(notice: Notice): Promise<void> {
    const now = (this.o.now ?? Date.now)();
    for (const target of notice.targets) {
      if (!target.startsWith('dingtalk:')) continue;
      const space = spaceOf(target);
      if (notice.report) {
        await this.postReport(space, notice.report, notice.summary);
        continue;
      }
      if (!this.o.credentials.cardTemplateId) {
        const md = dingTalkMarkdown(notice, now);
        await this.api.sendMarkdown(space, md.title, md.text);
        continue;
      }
      const params = cardParams(notice, now);
      await this.map.upsert(
        target,
        notice.key,
        notice.time,
        async () => {
          const outTrackId = `lb-${randomUUID()}`;
          await this.api.createCard(outTrackId, space, params);
          return outTrackId;
        },
        (outTrackId) => this.api.updateCard(outTrackId, params),
      );
    }
  }

  /** A drill report: its picture and summary, or the summary saying why the picture did not go. */
  private async postReport(space: Space, report: DrillReport, text: string): Promise<void> {
    const sent = await postDingTalkReport(this.api, space, report, text);
    if (!sent.picture)
      this.log.warn(
        { space: space.id, why: sent.why },
        'drill report sent as text, without its picture',
      );
  }

  /** A card, changed in place (a markdown message cannot be: DingTalk has no edit for it). */
  async updateMessage(_target: string, outTrackId: string, notice: Notice): Promise<void> {
    await this.api.updateCard(outTrackId, cardParams(notice, (this.o.now ?? Date.now)()));
  }

  /** An approval card is a notice with Approve / Reject buttons; a press comes back as its words. */
  askApproval(notice: Notice): Promise<void> {
    return this.postNotice(notice);
  }

  /** Why a robot message is not one to answer (another robot's, no sender, a malformed id), or undefined. */
  private refuseRobotMessage(m: RobotMessage, id: unknown): string | undefined {
    if (m === null || typeof m !== 'object') return 'not an object';
    if (m.robotCode !== this.o.credentials.robotCode) return 'not addressed to this robot';
    if (!m.senderStaffId && !m.senderId) return 'no sender';
    if (!isDeliveryId(id)) return 'malformed message id';
    return undefined;
  }

  private first(what: string): Promise<boolean> {
    return firstDelivery(this.o.redis, `${this.base}delivery:${what}`);
  }

  private async guard(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.error({ err: errorMessage(err), what }, 'DingTalk call failed');
    }
  }
}
