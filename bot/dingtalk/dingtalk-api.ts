// DingTalk's OpenAPI as the robot uses it: token, messages, cards, pictures, session webhooks.
import { type Logger, silentLog } from '../../core/log.js';
import { waitAndRetry } from '../wait-and-retry.js';
import { DingTalkApiError } from './dingtalk-api-error.js';
import type { DingTalkCredentials } from './dingtalk-credentials.js';

export { DingTalkApiError } from './dingtalk-api-error.js';

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

/** Who a private message did not reach: unknown staff ids, and ids still flow-controlled after the waits. */
export interface PrivateDelivery {
  invalid: string[];
  undelivered: string[];
}

export type CardDelivery = { delivered: true } | { delivered: false; reason: string };

/** Undelivered cards remembered for their updates; older ones are forgotten first. */
const MAX_UNDELIVERED = 500;

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** A card's content as a markdown message, saying why it is not a card. */
function cardAsMarkdown(p: CardParams, reason: string): string {
  return [
    `#### ${p.title}`,
    p.summary,
    p.details,
    `> Sent as a message: the card could not be delivered here (${reason}).`,
  ]
    .filter((part) => part.trim() !== '')
    .join('\n\n');
}

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
  /** Cards createAndDeliver could not deliver, oldest first: their updates go as messages. */
  private readonly undelivered = new Map<string, { space: Space; reason: string }>();
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

  /**
   * A markdown message from the robot to people, privately. batchSend answers HTTP 200 even when
   * some got nothing: people it flow-controlled are sent to again after the throttling waits;
   * people it does not know, and any still held back after the last wait, are reported (logged
   * and returned). Throws when nobody got the message.
   */
  async sendPrivateMarkdown(
    userIds: string[],
    title: string,
    text: string,
  ): Promise<PrivateDelivery> {
    const invalid: string[] = [];
    let pending = [...new Set(userIds)];
    for (let attempt = 0; pending.length > 0; attempt++) {
      const answer = (await this.request('POST', '/v1.0/robot/oToMessages/batchSend', {
        robotCode: this.c.robotCode,
        userIds: pending,
        msgKey: 'sampleMarkdown',
        msgParam: JSON.stringify({ title, text }),
      })) as { invalidStaffIdList?: unknown; flowControlledStaffIdList?: unknown };
      invalid.push(...strings(answer.invalidStaffIdList));
      const held = strings(answer.flowControlledStaffIdList).filter((u) => pending.includes(u));
      const wait = this.backoffMs[attempt];
      if (held.length === 0 || wait === undefined) {
        pending = held;
        break;
      }
      this.log.warn(
        { staffIds: held, waitMs: wait, attempt: attempt + 1 },
        'DingTalk flow-controlled private messages; sending to them again after a wait',
      );
      await this.sleep(wait);
      pending = held;
    }
    const result = { invalid, undelivered: pending };
    if (invalid.length > 0 || pending.length > 0) {
      this.log.warn(
        result,
        'DingTalk did not deliver a private message to everyone: unknown staff ids, or still flow-controlled',
      );
    }
    if (invalid.length + pending.length >= new Set(userIds).size) {
      throw new DingTalkApiError(
        '/v1.0/robot/oToMessages/batchSend',
        200,
        invalid.length > 0 ? 'invalidStaffId' : 'flowControlled',
        `the message reached nobody (unknown: ${invalid.join(',') || 'none'}; still flow-controlled: ${pending.join(',') || 'none'})`,
      );
    }
    return result;
  }

  /**
   * Creates an interactive card in a group or a private chat with the robot; presses come back on
   * the stream. createAndDeliver answers HTTP 200 even when the card reached nobody (the robot is
   * not in the group, cards are off there): then the card's content goes to the space as a
   * markdown message that says so, and its updates follow as messages too.
   */
  async createCard(outTrackId: string, space: Space, params: CardParams): Promise<CardDelivery> {
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
    const answer = (await this.request('POST', '/v1.0/card/instances/createAndDeliver', {
      cardTemplateId: this.c.cardTemplateId,
      outTrackId,
      callbackType: 'STREAM',
      cardData: { cardParamMap: { ...params } },
      ...where,
    })) as { result?: { deliverResults?: unknown } };
    const results = Array.isArray(answer.result?.deliverResults)
      ? (answer.result.deliverResults as { success?: unknown; errorMsg?: unknown }[])
      : [];
    const failed = results.find((r) => r?.success === false);
    if (!failed) return { delivered: true };
    const reason = typeof failed.errorMsg === 'string' ? failed.errorMsg : 'no reason given';
    this.log.warn(
      { outTrackId, space: space.id, reason },
      'DingTalk created the card but could not deliver it; sending it as a message instead',
    );
    this.undelivered.set(outTrackId, { space, reason });
    if (this.undelivered.size > MAX_UNDELIVERED) {
      const oldest = this.undelivered.keys().next().value;
      if (oldest !== undefined) this.undelivered.delete(oldest);
    }
    await this.sendMarkdown(space, params.title, cardAsMarkdown(params, reason));
    return { delivered: false, reason };
  }

  /** A markdown message from the robot to a group, or privately to one person. */
  async sendMarkdown(space: Space, title: string, text: string): Promise<void> {
    if (space.kind === 'group') await this.sendGroupMarkdown(space.id, title, text);
    else await this.sendPrivateMarkdown([space.id], title, text);
  }

  /** Whether a card went to its space as a message instead (createAndDeliver could not deliver it). */
  undeliveredCard(outTrackId: string): { space: Space; reason: string } | undefined {
    return this.undelivered.get(outTrackId);
  }

  async updateCard(outTrackId: string, params: CardParams): Promise<void> {
    const fallback = this.undelivered.get(outTrackId);
    if (fallback) {
      await this.sendMarkdown(
        fallback.space,
        params.title,
        cardAsMarkdown(params, fallback.reason),
      );
      return;
    }
    await this.request('PUT', '/v1.0/card/instances', {
      outTrackId,
      cardData: { cardParamMap: { ...params } },
      cardUpdateOptions: { updateCardDataByKey: true },
    });
  }

  /**
   * Uploads a picture with `POST {oapi}/media/upload?access_token=…&type=image` (multipart, the
   * file in the `media` field); DingTalk answers `{errcode: 0, media_id}` and the id stands for the
   * picture in an image message.
   */
  async uploadImage(png: Buffer, filename: string): Promise<string> {
    const base = this.c.oapiUrl;
    if (!base) throw new DingTalkApiError('media/upload', 0, 'no_oapi', 'no media upload URL set');
    return this.patiently('media/upload', async () => {
      const url = new URL(`${base}/media/upload`);
      url.searchParams.set('access_token', await this.accessToken());
      url.searchParams.set('type', 'image');
      const form = new FormData();
      form.append('media', new Blob([png], { type: 'image/png' }), filename);
      const res = await this.fetchFn(url, {
        method: 'POST',
        body: form,
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.json().catch(() => ({}))) as {
        errcode?: number;
        errmsg?: string;
        media_id?: string;
      };
      if (!res.ok || body.errcode !== 0 || !body.media_id)
        throw new DingTalkApiError(
          'media/upload',
          res.status,
          String(body.errcode ?? res.status),
          body.errmsg ?? 'no media_id in the answer',
        );
      return body.media_id;
    });
  }

  /** An image message from the robot (`sampleImageMsg`, the uploaded media id as its photoURL). */
  async sendImage(space: Space, mediaId: string): Promise<void> {
    const msg = { msgKey: 'sampleImageMsg', msgParam: JSON.stringify({ photoURL: mediaId }) };
    if (space.kind === 'group')
      await this.request('POST', '/v1.0/robot/groupMessages/send', {
        robotCode: this.c.robotCode,
        openConversationId: space.id,
        ...msg,
      });
    else
      await this.request('POST', '/v1.0/robot/oToMessages/batchSend', {
        robotCode: this.c.robotCode,
        userIds: [space.id],
        ...msg,
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
