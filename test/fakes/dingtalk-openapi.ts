import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { DingTalkMedia } from './dingtalk-media.js';

/**
 * An emulator of DingTalk's OpenAPI as the robot uses it: `POST /v1.0/oauth2/accessToken`
 * (appKey/appSecret → accessToken, expireIn), the `x-acs-dingtalk-access-token` check on every other
 * call, group and one-to-one robot messages, interactive cards (createAndDeliver, update), and
 * session webhooks (`/session/<id>`, refused once expired), and throttling on demand. Partial
 * failures come back as DingTalk sends them, HTTP 200 with the failures in the body: cards not
 * delivered (`deliverResults[].success: false`), private messages flow-controlled or to unknown
 * staff (`flowControlledStaffIdList`, `invalidStaffIdList`). Records everything.
 */
export interface Card {
  outTrackId: string;
  openSpaceId: string;
  cardTemplateId: string;
  params: Record<string, string>;
  updates: number;
  /** False when createAndDeliver could not put it in its space: nobody sees it. */
  delivered: boolean;
}

export interface SentMessage {
  kind: 'group' | 'private' | 'webhook';
  to: string;
  title: string;
  text: string;
  /** An image message (`sampleImageMsg`): the picture it shows. */
  photo?: Buffer;
}

export class DingTalkOpenApi {
  readonly tokens: string[] = [];
  readonly cards = new Map<string, Card>();
  readonly messages: SentMessage[] = [];
  readonly refused: { path: string; why: string }[] = [];
  /** Media upload (`/media/upload`, on the older API host, served here too). */
  readonly media = new DingTalkMedia((t) => this.tokens.includes(t));
  private server: Server | undefined;
  private readonly expiredSessions = new Set<string>();
  private throttled = 0;
  /** Spaces (openSpaceId) where a card is created but cannot be delivered, with the reason. */
  private readonly undeliverable = new Map<string, string>();
  /** Staff ids batchSend flow-controls, with how many more sends to hold back. */
  private readonly flowControlled = new Map<string, number>();
  /** Staff ids batchSend does not know (left the organisation, a typo). */
  private readonly invalidStaff = new Set<string>();
  url = '';

  constructor(
    private readonly appKey: string,
    private readonly appSecret: string,
    /** expireIn handed out with each token, in seconds. */
    public expireIn = 7200,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(({ status, body }) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
      );
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => {
      this.server?.close(() => r());
      this.server?.closeAllConnections();
    });
  }

  /** A session webhook URL as a robot message carries it. */
  sessionWebhook(): string {
    return `${this.url}/session/${randomUUID()}`;
  }

  expire(webhook: string): void {
    this.expiredSessions.add(new URL(webhook).pathname);
  }

  /**
   * The next `calls` calls are refused for their rate, as DingTalk does: the OpenAPI with 403
   * `Forbidden.AccessDenied.QpsLimitForApi`, a session webhook with errcode 130101 (send too fast).
   */
  throttle(calls: number): void {
    this.throttled = calls;
  }

  /**
   * Cards to this space are created but not delivered: createAndDeliver answers HTTP 200 with
   * `deliverResults[].success: false` (as when the robot is not in the group).
   */
  refuseCardsIn(openSpaceId: string, reason = 'robot is not in the group'): void {
    this.undeliverable.set(openSpaceId, reason);
  }

  /** The next `sends` batchSends to this person list them in flowControlledStaffIdList, undelivered. */
  flowControl(staffId: string, sends = 1): void {
    this.flowControlled.set(staffId, sends);
  }

  /** batchSend lists this person in invalidStaffIdList and delivers nothing to them. */
  invalidate(staffId: string): void {
    this.invalidStaff.add(staffId);
  }

  revokeTokens(): void {
    this.tokens.length = 0;
  }

  /** Cards in a private chat between the robot and one person. */
  privateCardsOf(staffId: string): Card[] {
    return [...this.cards.values()].filter(
      (c) => c.openSpaceId === `dtv1.card//IM_ROBOT.${staffId}`,
    );
  }

  cardsIn(cid: string): Card[] {
    return [...this.cards.values()].filter((c) => c.openSpaceId === `dtv1.card//IM_GROUP.${cid}`);
  }

  private refuse(path: string, status: number, code: string, why: string) {
    this.refused.push({ path, why });
    return { status, body: { code, message: why, requestid: randomUUID() } };
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (path === '/media/upload' && req.method === 'POST')
      return this.media.upload(url, req.headers['content-type'] ?? '', Buffer.concat(chunks));
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      return this.refuse(path, 400, 'InvalidParameter', 'body is not JSON');
    }
    if (this.throttled > 0) {
      this.throttled--;
      if (path.startsWith('/session/')) {
        this.refused.push({ path, why: 'send too fast' });
        return { status: 200, body: { errcode: 130101, errmsg: 'send too fast' } };
      }
      return this.refuse(
        path,
        403,
        'Forbidden.AccessDenied.QpsLimitForApi',
        'the QPS limit of this API is exceeded',
      );
    }
    if (path.startsWith('/session/')) {
      if (this.expiredSessions.has(path))
        return { status: 200, body: { errcode: 300001, errmsg: 'session webhook expired' } };
      const md = body.markdown as { title?: string; text?: string } | undefined;
      if (body.msgtype !== 'markdown' && body.msgtype !== 'text')
        return { status: 200, body: { errcode: 40035, errmsg: 'msgtype missing' } };
      this.messages.push({
        kind: 'webhook',
        to: path,
        title: md?.title ?? '',
        text: md?.text ?? String((body.text as { content?: string })?.content ?? ''),
      });
      return { status: 200, body: { errcode: 0, errmsg: 'ok' } };
    }
    if (path === '/v1.0/oauth2/accessToken') {
      if (body.appKey !== this.appKey || body.appSecret !== this.appSecret)
        return this.refuse(path, 400, 'invalidClientIdOrSecret', 'appKey or appSecret is wrong');
      const token = randomBytes(16).toString('hex');
      this.tokens.push(token);
      return { status: 200, body: { accessToken: token, expireIn: this.expireIn } };
    }
    const token = req.headers['x-acs-dingtalk-access-token'];
    if (typeof token !== 'string' || !this.tokens.includes(token))
      return this.refuse(path, 401, 'InvalidAuthentication', 'access token missing or invalid');
    const msg = () =>
      JSON.parse(String(body.msgParam ?? '{}')) as {
        title?: string;
        text?: string;
        photoURL?: string;
      };
    // An image message names an uploaded picture by its media id (or a public URL).
    const photoURL = body.msgKey === 'sampleImageMsg' ? msg().photoURL : undefined;
    const photo = photoURL ? this.media.uploaded.get(photoURL)?.bytes : undefined;
    if (body.msgKey === 'sampleImageMsg' && !photo && !/^https?:\/\//.test(photoURL ?? ''))
      return this.refuse(path, 400, 'InvalidParameter', 'photoURL is neither a media id nor a URL');
    const pic = photo ? { photo } : {};
    switch (`${req.method} ${path}`) {
      case 'POST /v1.0/robot/groupMessages/send':
        if (typeof body.openConversationId !== 'string' || !body.robotCode || !body.msgKey)
          return this.refuse(
            path,
            400,
            'InvalidParameter',
            'openConversationId, robotCode and msgKey are required',
          );
        this.messages.push({
          kind: 'group',
          to: body.openConversationId,
          title: msg().title ?? '',
          text: msg().text ?? '',
          ...pic,
        });
        return { status: 200, body: { processQueryKey: randomUUID() } };
      case 'POST /v1.0/robot/oToMessages/batchSend':
        if (!Array.isArray(body.userIds) || body.userIds.length === 0 || !body.robotCode)
          return this.refuse(path, 400, 'InvalidParameter', 'userIds and robotCode are required');
        if (body.userIds.length > 20)
          return this.refuse(path, 400, 'InvalidParameter', 'at most 20 userIds per call');
        {
          // Partial failure comes back as HTTP 200: the ids not delivered are listed by why.
          const invalid: string[] = [];
          const held: string[] = [];
          for (const u of body.userIds.map(String)) {
            if (this.invalidStaff.has(u)) {
              invalid.push(u);
              continue;
            }
            const left = this.flowControlled.get(u) ?? 0;
            if (left > 0) {
              this.flowControlled.set(u, left - 1);
              held.push(u);
              continue;
            }
            this.messages.push({
              kind: 'private',
              to: u,
              title: msg().title ?? '',
              text: msg().text ?? '',
              ...pic,
            });
          }
          return {
            status: 200,
            body: {
              processQueryKey: randomUUID(),
              invalidStaffIdList: invalid,
              flowControlledStaffIdList: held,
            },
          };
        }
      case 'POST /v1.0/card/instances/createAndDeliver': {
        const outTrackId = body.outTrackId;
        const data = body.cardData as { cardParamMap?: Record<string, string> } | undefined;
        if (
          typeof outTrackId !== 'string' ||
          typeof body.cardTemplateId !== 'string' ||
          typeof body.openSpaceId !== 'string' ||
          !data?.cardParamMap
        ) {
          return this.refuse(
            path,
            400,
            'InvalidParameter',
            'outTrackId, cardTemplateId, openSpaceId and cardData.cardParamMap are required',
          );
        }
        const space = body.openSpaceId;
        const group = space.startsWith('dtv1.card//IM_GROUP.');
        const robot = space.startsWith('dtv1.card//IM_ROBOT.');
        if (!group && !robot)
          return this.refuse(
            path,
            400,
            'InvalidParameter',
            'openSpaceId must be dtv1.card//IM_GROUP.<cid> or dtv1.card//IM_ROBOT.<userId>',
          );
        if (
          group &&
          !(body.imGroupOpenDeliverModel as { robotCode?: string } | undefined)?.robotCode
        ) {
          return this.refuse(
            path,
            400,
            'InvalidParameter',
            'imGroupOpenDeliverModel.robotCode is required for IM_GROUP',
          );
        }
        if (
          robot &&
          (body.imRobotOpenDeliverModel as { spaceType?: string } | undefined)?.spaceType !==
            'IM_ROBOT'
        ) {
          return this.refuse(
            path,
            400,
            'InvalidParameter',
            'imRobotOpenDeliverModel.spaceType IM_ROBOT is required for IM_ROBOT',
          );
        }
        if (this.cards.has(outTrackId))
          return this.refuse(path, 400, 'param.outTrackIdDuplicate', 'outTrackId already used');
        for (const [k, v] of Object.entries(data.cardParamMap))
          if (typeof v !== 'string')
            return this.refuse(path, 400, 'InvalidParameter', `cardParamMap.${k} must be a string`);
        const refusedWhy = this.undeliverable.get(space);
        this.cards.set(outTrackId, {
          outTrackId,
          openSpaceId: body.openSpaceId,
          cardTemplateId: body.cardTemplateId,
          params: { ...data.cardParamMap },
          updates: 0,
          delivered: refusedWhy === undefined,
        });
        const spaceId = space.replace(/^dtv1\.card\/\/IM_(GROUP|ROBOT)\./, '');
        return {
          status: 200,
          body: {
            success: true,
            result: {
              outTrackId,
              deliverResults: [
                {
                  spaceType: group ? 'IM_GROUP' : 'IM_ROBOT',
                  spaceId,
                  success: refusedWhy === undefined,
                  ...(refusedWhy !== undefined ? { errorMsg: refusedWhy } : {}),
                },
              ],
            },
          },
        };
      }
      case 'PUT /v1.0/card/instances': {
        const card = this.cards.get(String(body.outTrackId));
        const data = body.cardData as { cardParamMap?: Record<string, string> } | undefined;
        if (!card) return this.refuse(path, 400, 'card.notFound', 'no card with that outTrackId');
        if (!data?.cardParamMap)
          return this.refuse(path, 400, 'InvalidParameter', 'cardData.cardParamMap is required');
        Object.assign(card.params, data.cardParamMap);
        card.updates++;
        return { status: 200, body: { success: true, result: true } };
      }
      default:
        return this.refuse(path, 404, 'NotFound', 'no such API');
    }
  }
}
