import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * An emulator of DingTalk's stream gateway: `POST /v1.0/gateway/connections/open` (checks the
 * client id and secret, hands out a one-time ticket), the WebSocket the ticket opens, SYSTEM pings,
 * CALLBACK pushes of robot messages and card callbacks, and EVENT pushes of event subscriptions.
 * It checks each answer the client sends (code 200, a known messageId, a JSON string as data) and,
 * like DingTalk, pushes a callback or event again when it was not answered within `repushAfterMs`
 * (about 60 s on the real gateway). Before it closes a connection it sends a SYSTEM `disconnect`.
 */
export interface Ack {
  messageId: string;
  code: number;
  data: unknown;
}

interface Pushed {
  frame: Record<string, unknown>;
  messageId: string;
  /** Times it was sent again for want of an answer. */
  repushes: number;
  timer: NodeJS.Timeout | undefined;
}

export interface DingTalkGatewayOptions {
  /** How long an unanswered CALLBACK or EVENT waits before it is pushed again; 60 s by default. */
  repushAfterMs?: number;
  /** How many times one is pushed again before the gateway gives up on it; 3 by default. */
  maxRepushes?: number;
  /** Between the SYSTEM disconnect frame and closing the socket; 100 ms by default. */
  disconnectGraceMs?: number;
}

export class DingTalkGateway {
  readonly clientId = `ding${randomBytes(6).toString('hex')}`;
  readonly clientSecret = randomBytes(24).toString('hex');
  readonly acks: Ack[] = [];
  /** Answers that broke the protocol: unknown messageId, code not 200, data not a JSON string. */
  readonly badAcks: unknown[] = [];
  readonly opens: { clientId: string; subscriptions: unknown }[] = [];
  private readonly tickets = new Set<string>();
  private readonly sockets = new Set<WebSocket>();
  private readonly pushed = new Map<string, Pushed>();
  /** While true, connections/open answers 503 (the gateway is unreachable for the client). */
  refuseOpen = false;
  /** messageIds pushed again by the timer, in order. */
  readonly repushed: string[] = [];
  /** How many of the next pushes are lost on the wire (sent, never received), to test re-pushes. */
  losePushes = 0;
  private readonly repushAfterMs: number;
  private readonly maxRepushes: number;
  private readonly disconnectGraceMs: number;

  constructor(o: DingTalkGatewayOptions = {}) {
    this.repushAfterMs = o.repushAfterMs ?? 60_000;
    this.maxRepushes = o.maxRepushes ?? 3;
    this.disconnectGraceMs = o.disconnectGraceMs ?? 100;
  }
  private http: Server | undefined;
  private wss: WebSocketServer | undefined;
  url = '';

  async start(): Promise<void> {
    this.wss = new WebSocketServer({ noServer: true });
    this.http = createServer((req, res) => {
      void this.open(req).then(({ status, body }) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
      );
    });
    this.http.on('upgrade', (req, socket, head) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const ticket = u.searchParams.get('ticket') ?? '';
      if (u.pathname !== '/connect' || !this.tickets.delete(ticket)) {
        socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
        return;
      }
      this.wss?.handleUpgrade(req, socket, head, (ws) => this.attach(ws));
    });
    await new Promise<void>((r) => this.http?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.http.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    for (const p of this.pushed.values()) clearTimeout(p.timer);
    for (const s of this.sockets) s.terminate();
    this.wss?.close();
    await new Promise<void>((r) => {
      this.http?.close(() => r());
      this.http?.closeAllConnections();
    });
  }

  /** DINGTALK_GATEWAY_URL. */
  get openUrl(): string {
    return `${this.url}/v1.0/gateway/connections/open`;
  }

  get connections(): number {
    return this.sockets.size;
  }

  private async open(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (
      new URL(req.url ?? '/', 'http://x').pathname !== '/v1.0/gateway/connections/open' ||
      req.method !== 'POST'
    ) {
      return { status: 404, body: { code: 'NotFound', message: 'no such API' } };
    }
    if (this.refuseOpen)
      return { status: 503, body: { code: 'ServiceUnavailable', message: 'try again later' } };
    let body: { clientId?: string; clientSecret?: string; subscriptions?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      return { status: 400, body: { code: 'InvalidParameter', message: 'body is not JSON' } };
    }
    if (body.clientId !== this.clientId || body.clientSecret !== this.clientSecret) {
      return {
        status: 401,
        body: { code: 'InvalidAuthentication', message: 'clientId or clientSecret is wrong' },
      };
    }
    if (!Array.isArray(body.subscriptions)) {
      return {
        status: 400,
        body: { code: 'InvalidParameter', message: 'subscriptions is required' },
      };
    }
    this.opens.push({ clientId: body.clientId, subscriptions: body.subscriptions });
    const ticket = randomUUID();
    this.tickets.add(ticket);
    return { status: 200, body: { endpoint: `${this.url.replace('http', 'ws')}/connect`, ticket } };
  }

  private attach(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('message', (raw) => {
      let msg: { code?: number; headers?: { messageId?: string }; data?: unknown };
      try {
        msg = JSON.parse(String(raw)) as typeof msg;
      } catch {
        this.badAcks.push(String(raw));
        return;
      }
      const messageId = msg.headers?.messageId;
      if (!messageId || msg.code !== 200 || typeof msg.data !== 'string') {
        this.badAcks.push(msg);
        return;
      }
      if (messageId.startsWith('ping-')) {
        this.acks.push({ messageId, code: msg.code, data: msg.data });
        return;
      }
      if (!this.pushed.has(messageId)) {
        this.badAcks.push(msg);
        return;
      }
      let data: unknown;
      try {
        data = JSON.parse(msg.data);
      } catch {
        this.badAcks.push(msg);
        return;
      }
      clearTimeout(this.pushed.get(messageId)?.timer);
      this.pushed.delete(messageId);
      this.acks.push({ messageId, code: msg.code, data });
    });
  }

  private send(frame: Record<string, unknown>): void {
    const text = JSON.stringify(frame);
    for (const s of this.sockets) s.send(text);
  }

  /** A SYSTEM ping; the client must echo it with code 200. */
  ping(): string {
    const messageId = `ping-${randomUUID()}`;
    this.send({
      specVersion: '1.0',
      type: 'SYSTEM',
      headers: {
        messageId,
        topic: 'ping',
        contentType: 'application/json',
        time: String(Date.now()),
      },
      data: JSON.stringify({ opaque: randomUUID() }),
    });
    return messageId;
  }

  private callback(
    topic: string,
    data: Record<string, unknown>,
    messageId: string = randomUUID(),
  ): string {
    return this.push(messageId, {
      specVersion: '1.0',
      type: 'CALLBACK',
      headers: {
        appId: 'lifeboat-test',
        connectionId: 'conn-1',
        contentType: 'application/json',
        messageId,
        time: String(Date.now()),
        topic,
      },
      data: JSON.stringify(data),
    });
  }

  /** Sends a frame that wants an answer, and pushes it again while none comes. */
  private push(messageId: string, frame: Record<string, unknown>): string {
    const p: Pushed = { frame, messageId, repushes: 0, timer: undefined };
    const arm = () => {
      p.timer = setTimeout(() => {
        if (!this.pushed.has(messageId) || p.repushes >= this.maxRepushes) return;
        p.repushes += 1;
        this.repushed.push(messageId);
        this.send(frame);
        arm();
      }, this.repushAfterMs);
      p.timer.unref();
    };
    this.pushed.set(messageId, p);
    if (this.losePushes > 0) this.losePushes -= 1;
    else this.send(frame);
    arm();
    return messageId;
  }

  /**
   * An EVENT push (an event subscription, e.g. a chat changed); the client answers
   * `{status: 'SUCCESS' | 'LATER'}`, and an unanswered one is pushed again like a callback.
   */
  event(eventType: string, data: Record<string, unknown>, messageId = randomUUID()): string {
    const now = String(Date.now());
    return this.push(messageId, {
      specVersion: '1.0',
      type: 'EVENT',
      headers: {
        appId: 'lifeboat-test',
        connectionId: 'conn-1',
        contentType: 'application/json',
        eventBornTime: now,
        eventCorpId: 'ding-corp',
        eventId: randomUUID(),
        eventType,
        eventUnifiedAppId: 'lifeboat-test',
        messageId,
        time: now,
        topic: '*',
      },
      data: JSON.stringify(data),
    });
  }

  /**
   * Closes every connection the way DingTalk does (a gateway restart, a rebalance): a SYSTEM
   * `disconnect` frame first, then the close after a grace.
   */
  async disconnect(reason = 'gateway restart'): Promise<void> {
    const sockets = [...this.sockets];
    this.send({
      specVersion: '1.0',
      type: 'SYSTEM',
      headers: {
        messageId: `disconnect-${randomUUID()}`,
        topic: 'disconnect',
        contentType: 'application/json',
        time: String(Date.now()),
      },
      data: JSON.stringify({ reason }),
    });
    await new Promise((r) => setTimeout(r, this.disconnectGraceMs));
    for (const s of sockets) s.close(1000, reason);
  }

  /** A person writes to the robot; returns the frame's messageId. */
  robotMessage(
    text: string,
    {
      staffId = 'staff-alice',
      conversationId = 'cid-ops',
      conversationType = '2',
      msgId = `msg-${randomUUID()}`,
      sessionWebhook = '',
      sessionWebhookExpiredTime = Date.now() + 3_600_000,
      messageId,
    }: {
      staffId?: string;
      conversationId?: string;
      conversationType?: '1' | '2';
      msgId?: string;
      sessionWebhook?: string;
      sessionWebhookExpiredTime?: number;
      messageId?: string;
    } = {},
  ): string {
    return this.callback(
      '/v1.0/im/bot/messages/get',
      {
        conversationId,
        conversationType,
        chatbotCorpId: 'ding-corp',
        chatbotUserId: 'robot-1',
        msgId,
        senderNick: staffId,
        isAdmin: false,
        senderStaffId: staffId,
        senderId: `$:LWCP_v1:$${staffId}`,
        sessionWebhook,
        sessionWebhookExpiredTime,
        createAt: Date.now(),
        senderCorpId: 'ding-corp',
        robotCode: this.clientId,
        msgtype: 'text',
        text: { content: text },
      },
      messageId,
    );
  }

  /** A person presses a card button whose param `words` is the command. */
  cardPress(
    outTrackId: string,
    words: string,
    {
      userId = 'staff-bob',
      spaceId = 'cid-ops',
      messageId,
    }: { userId?: string; spaceId?: string; messageId?: string } = {},
  ): string {
    return this.callback(
      '/v1.0/card/instances/callback',
      {
        outTrackId,
        corpId: 'ding-corp',
        userId,
        spaceType: 'IM_GROUP',
        spaceId,
        type: 'actionCallback',
        content: JSON.stringify({ cardPrivateData: { actionIds: ['press'], params: { words } } }),
      },
      messageId,
    );
  }

  /** Pushes again, now, every callback not answered yet (the timer does it after repushAfterMs). */
  redeliverUnanswered(): string[] {
    const ids = [...this.pushed.keys()];
    for (const p of this.pushed.values()) this.send(p.frame);
    return ids;
  }

  /** Drops every connection, as a network fault would. */
  drop(): void {
    for (const s of this.sockets) s.terminate();
  }

  ackOf(messageId: string): Ack | undefined {
    return this.acks.find((a) => a.messageId === messageId);
  }
}
