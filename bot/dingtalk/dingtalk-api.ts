import { type Logger, silentLog } from '../../core/log.js';
import { waitAndRetry } from '../wait-and-retry.js';
import type { DingTalkCredentials } from './dingtalk-credentials.js';

/** A card's variables as our template reads them. */
export interface CardParams {
  title: string;
  summary: string;
  /** Markdown. */
  details: string;
  severity: string;
  /** JSON list of `{label, words, style}`: the template's buttons send `words` back. */
  actions: string;
}

/** Where a DingTalk message or card goes: a group (openConversationId) or a person (staffId). */
export type Space = { kind: 'group'; id: string } | { kind: 'user'; id: string };

/** `dingtalk:user:<staffId>` is a private chat with the robot; `dingtalk:<cid>` a group. */
export function spaceOf(channel: string): Space {
  const rest = channel.replace(/^dingtalk:/, '');
  return rest.startsWith('user:')
    ? { kind: 'user', id: rest.slice('user:'.length) }
    : { kind: 'group', id: rest };
}

export class DingTalkApiError extends Error {
  /** DingTalk refused for the call rate (QPS limits; a robot's 20 messages a minute): worth waiting. */
  readonly throttled: boolean;

  constructor(
    readonly path: string,
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`DingTalk ${path} answered ${status} ${code}: ${message}`);
    this.throttled =
      status === 429 || /QpsLimit|Throttl|RateLimit/i.test(code) || code === WEBHOOK_TOO_FAST;
  }
}

/** A session webhook's errcode for "send too fast" (a robot may post 20 messages a minute). */
const WEBHOOK_TOO_FAST = '130101';

export interface DingTalkApiOptions {
  fetch?: typeof fetch;
  now?: () => number;
  log?: Logger;
  /** Waits after a throttled call, in order; the call is given up after the last (default 1 s, 3 s, 9 s). */
  backoffMs?: readonly number[];
  sleep?: (ms: number) => Promise<void>;
}

/**
 * DingTalk's OpenAPI as the robot uses it: the app access token (fetched once and reused until a
 * minute before it expires), group and one-to-one messages, interactive cards, session webhooks.
 */
export class DingTalkApi {
  private token: { value: string; until: number } | undefined;
  private pending: Promise<string> | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly backoffMs: readonly number[];
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly c: DingTalkCredentials,
    o: DingTalkApiOptions = {},
  ) {
    this.fetchFn = o.fetch ?? fetch;
    this.now = o.now ?? Date.now;
    this.log = o.log ?? silentLog;
    this.backoffMs = o.backoffMs ?? [1000, 3000, 9000];
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /**
   * Runs a call; when DingTalk throttles it (it sends no Retry-After), waits 1 s, 3 s, 9 s
   * between tries and then gives it up, so one busy minute does not lose a message.
   */
  private patiently<T>(path: string, call: () => Promise<T>): Promise<T> {
    return waitAndRetry(
      call,
      (err, attempt) =>
        err instanceof DingTalkApiError && err.throttled ? this.backoffMs[attempt - 1] : undefined,
      {
        sleep: this.sleep,
        onWait: (err, attempt, waitMs) =>
          this.log.warn(
            { path, code: (err as DingTalkApiError).code, waitMs, attempt },
            'DingTalk throttled the call; waiting before trying again',
          ),
      },
    );
  }

  async accessToken(): Promise<string> {
    if (this.token && this.now() < this.token.until) return this.token.value;
    this.pending ??= this.fetchToken().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchToken(): Promise<string> {
    const body = (await this.request(
      'POST',
      '/v1.0/oauth2/accessToken',
      { appKey: this.c.clientId, appSecret: this.c.clientSecret },
      false,
    )) as {
      accessToken?: string;
      expireIn?: number;
    };
    if (!body.accessToken)
      throw new DingTalkApiError(
        '/v1.0/oauth2/accessToken',
        200,
        'no_token',
        'no accessToken in the answer',
      );
    const seconds = typeof body.expireIn === 'number' ? body.expireIn : 7200;
    this.token = { value: body.accessToken, until: this.now() + Math.max(0, seconds - 60) * 1000 };
    return body.accessToken;
  }

  /** A markdown message from the robot to a group. */
  async sendGroupMarkdown(openConversationId: string, title: string, text: string): Promise<void> {
    await this.request('POST', '/v1.0/robot/groupMessages/send', {
      robotCode: this.c.robotCode,
      openConversationId,
      msgKey: 'sampleMarkdown',
      msgParam: JSON.stringify({ title, text }),
    });
  }

  /** A markdown message from the robot to people, privately. */
  async sendPrivateMarkdown(userIds: string[], title: string, text: string): Promise<void> {
    await this.request('POST', '/v1.0/robot/oToMessages/batchSend', {
      robotCode: this.c.robotCode,
      userIds,
      msgKey: 'sampleMarkdown',
      msgParam: JSON.stringify({ title, text }),
    });
  }

  /** Creates an interactive card in a group or a private chat with the robot; presses come back on the stream. */
  async createCard(outTrackId: string, space: Space, params: CardParams): Promise<void> {
    if (!this.c.cardTemplateId) throw new Error('no DINGTALK_CARD_TEMPLATE_ID: cards are off');
    const where =
      space.kind === 'group'
        ? {
            openSpaceId: `dtv1.card//IM_GROUP.${space.id}`,
            imGroupOpenSpaceModel: { supportForward: true },
            imGroupOpenDeliverModel: { robotCode: this.c.robotCode },
          }
        : {
            openSpaceId: `dtv1.card//IM_ROBOT.${space.id}`,
            imRobotOpenSpaceModel: { supportForward: true },
            imRobotOpenDeliverModel: { spaceType: 'IM_ROBOT', robotCode: this.c.robotCode },
          };
    await this.request('POST', '/v1.0/card/instances/createAndDeliver', {
      cardTemplateId: this.c.cardTemplateId,
      outTrackId,
      callbackType: 'STREAM',
      cardData: { cardParamMap: { ...params } },
      ...where,
    });
  }

  /** A markdown message from the robot to a group, or privately to one person. */
  async sendMarkdown(space: Space, title: string, text: string): Promise<void> {
    if (space.kind === 'group') await this.sendGroupMarkdown(space.id, title, text);
    else await this.sendPrivateMarkdown([space.id], title, text);
  }

  async updateCard(outTrackId: string, params: CardParams): Promise<void> {
    await this.request('PUT', '/v1.0/card/instances', {
      outTrackId,
      cardData: { cardParamMap: { ...params } },
      cardUpdateOptions: { updateCardDataByKey: true },
    });
  }

  /** Answers a robot message in its conversation through the message's session webhook. */
  async replyWebhook(sessionWebhook: string, title: string, text: string): Promise<void> {
    await this.patiently('sessionWebhook', () => this.postWebhook(sessionWebhook, title, text));
  }

  private async postWebhook(sessionWebhook: string, title: string, text: string): Promise<void> {
    const res = await this.fetchFn(sessionWebhook, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ msgtype: 'markdown', markdown: { title, text } }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json().catch(() => ({}))) as { errcode?: number; errmsg?: string };
    if (!res.ok || (body.errcode !== undefined && body.errcode !== 0)) {
      throw new DingTalkApiError(
        'sessionWebhook',
        res.status,
        String(body.errcode ?? res.status),
        body.errmsg ?? 'refused',
      );
    }
  }

  private request(method: string, path: string, body: unknown, auth = true): Promise<unknown> {
    return this.patiently(path, () => this.requestOnce(method, path, body, auth));
  }

  private async requestOnce(
    method: string,
    path: string,
    body: unknown,
    auth: boolean,
  ): Promise<unknown> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
    };
    if (auth) headers['x-acs-dingtalk-access-token'] = await this.accessToken();
    const res = await this.fetchFn(`${this.c.apiUrl}${path}`, {
      method,
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const answer = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    if (!res.ok) {
      // A token revoked before its time: forget it, so the next call fetches a new one.
      if (res.status === 401) this.token = undefined;
      throw new DingTalkApiError(
        path,
        res.status,
        answer.code ?? 'error',
        answer.message ?? res.statusText,
      );
    }
    return answer;
  }
}
