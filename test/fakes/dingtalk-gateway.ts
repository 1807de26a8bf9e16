import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * An emulator of DingTalk's stream gateway: `POST /v1.0/gateway/connections/open` (checks the
 * client id and secret, hands out a one-time ticket), the WebSocket the ticket opens, SYSTEM pings,
 * and CALLBACK pushes of robot messages and card callbacks. It checks each answer the client sends
 * (code 200, a known messageId, a JSON string as data) and, like DingTalk, pushes a callback again
 * when it was not answered.
 */
export interface Ack {
  messageId: string;
  code: number;
  data: unknown;
}

interface Pushed {
  frame: Record<string, unknown>;
  messageId: string;
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
    const frame = {
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
    };
    this.pushed.set(messageId, { frame, messageId });
    this.send(frame);
    return messageId;
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

  /** Pushes again every callback not answered yet, as DingTalk does. */
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
