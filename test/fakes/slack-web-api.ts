import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';
import { blockKitProblems } from './block-kit-check.js';
import { SlackChat } from './slack-chat.js';
import { SlackFiles } from './slack-files.js';
import { blocksOf, ok, parseArgs, readBody, readBytes } from './slack-wire.js';

/**
 * An emulator of Slack's side: the Web API the bot calls (`auth.test`, `chat.postMessage`,
 * `chat.update`, `chat.postEphemeral`, `response_url`), recording every call, and the sender of
 * signed slash commands, mentions (Events API) and button presses to the bot's `/slack/events`. It checks what Slack
 * checks: the bearer token, required arguments, that updated messages exist, `response_url`'s
 * five uses, and Block Kit's limits (`invalid_blocks`, recorded in `refusedBlocks`); and it can
 * answer `ratelimited` with a Retry-After.
 */
export interface SlackCall {
  method: string;
  args: Record<string, unknown>;
  at: number;
}

export interface SlackMessage {
  channel: string;
  ts: string;
  text: string;
  blocks: Record<string, unknown>[];
  threadTs?: string;
  updates: number;
  /** Set for a person's message (a mention), unset for the bot's posts. */
  user?: string;
}

export interface ResponseUrlPost {
  id: string;
  body: Record<string, unknown>;
}

export class SlackEmulator {
  readonly token = `xoxb-test-${randomBytes(8).toString('hex')}`;
  readonly signingSecret = randomBytes(16).toString('hex');
  readonly calls: SlackCall[] = [];
  readonly messages = new Map<string, SlackMessage>();
  readonly responses: ResponseUrlPost[] = [];
  readonly ephemerals: SlackCall[] = [];
  /** Messages refused as `invalid_blocks`, with Slack's reasons: a test expects none. */
  readonly refusedBlocks: { method: string; problems: string[] }[] = [];
  /** Socket Mode: the app-level token, and what the app answered to each envelope. */
  readonly appToken = `xapp-1-test-${randomBytes(8).toString('hex')}`;
  readonly socketAcks: { envelope_id: string; payload?: unknown }[] = [];
  private readonly sockets = new Set<WebSocket>();
  private readonly tickets = new Set<string>();
  private wss: WebSocketServer | undefined;
  private server: Server | undefined;
  private seq = 0;
  private rateLimited = 0;
  private retryAfter = 1;
  private readonly responseUses = new Map<string, number>();
  url = '';
  /** The files upload API (`files.getUploadURLExternal`, the upload URL, `files.completeUploadExternal`). */
  readonly files = new SlackFiles(() => this.url);
  /** Channels the bot is not a member of: sharing a file there answers `not_in_channel`. */
  readonly notInChannel = new Set<string>();
  /** The chat API (`chat.postMessage`, `chat.update`, `chat.postEphemeral`). */
  private readonly chat = new SlackChat(this.messages, this.ephemerals, () => ++this.seq);

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(
        ({ status, body, headers }) =>
          res
            .writeHead(status, { 'content-type': 'application/json', ...headers })
            .end(JSON.stringify(body)),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    this.wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      const ticket = new URL(req.url ?? '/', 'http://x').searchParams.get('ticket') ?? '';
      if (!this.tickets.delete(ticket)) {
        socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
        return;
      }
      this.wss?.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.add(ws);
        ws.on('close', () => this.sockets.delete(ws));
        ws.on('message', (raw) =>
          this.socketAcks.push(JSON.parse(String(raw)) as { envelope_id: string }),
        );
        ws.send(
          JSON.stringify({
            type: 'hello',
            num_connections: 1,
            connection_info: { app_id: 'A0LIFEBOAT' },
          }),
        );
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    const a = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${a.port}`;
  }

  get socketConnections(): number {
    return this.sockets.size;
  }

  /** Socket Mode: sends an envelope (`slash_commands` or `interactive`) over every connection. */
  sendEnvelope(
    type: 'slash_commands' | 'interactive',
    payload: Record<string, unknown>,
    retryAttempt = 0,
  ): string {
    const envelope_id = randomUUID();
    const text = JSON.stringify({
      envelope_id,
      type,
      payload,
      accepts_response_payload: type === 'slash_commands',
      retry_attempt: retryAttempt,
      retry_reason: retryAttempt ? 'timeout' : '',
    });
    for (const s of this.sockets) s.send(text);
    return envelope_id;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    this.wss?.close();
    await new Promise<void>((r) => {
      this.server?.close(() => r());
      this.server?.closeAllConnections();
    });
  }

  /** Base URL for SLACK_API_URL. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  /** The next `count` Web API calls answer 429 `ratelimited` with Retry-After `seconds`. */
  rateLimit(count: number, seconds = 1): void {
    this.rateLimited = count;
    this.retryAfter = seconds;
  }

  callsOf(method: string): SlackCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** The bot's top-level messages in a channel (thread replies and people's messages left out), oldest first. */
  channelMessages(channel: string): SlackMessage[] {
    return [...this.messages.values()].filter(
      (m) => m.channel === channel && !m.threadTs && !m.user,
    );
  }

  threadOf(channel: string, ts: string): SlackMessage[] {
    return [...this.messages.values()].filter((m) => m.channel === channel && m.threadTs === ts);
  }

  private async handle(
    req: IncomingMessage,
  ): Promise<{ status: number; body: unknown; headers?: Record<string, string> }> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path.startsWith('/upload/'))
      return this.files.upload(
        path.slice('/upload/'.length),
        req.headers['content-type'] ?? '',
        await readBytes(req),
      );
    const raw = await readBody(req);
    if (path.startsWith('/response/'))
      return this.responseUrl(path.slice('/response/'.length), raw);
    if (!path.startsWith('/api/'))
      return { status: 404, body: { ok: false, error: 'unknown_method' } };
    const method = path.slice('/api/'.length);
    const args = parseArgs(req.headers['content-type'] ?? '', raw);
    if (this.rateLimited > 0) {
      this.rateLimited--;
      this.calls.push({ method, args: { ...args, rateLimited: true }, at: Date.now() });
      return {
        status: 429,
        body: { ok: false, error: 'ratelimited' },
        headers: { 'retry-after': String(this.retryAfter) },
      };
    }
    this.calls.push({ method, args, at: Date.now() });
    const auth =
      req.headers.authorization ?? (typeof args.token === 'string' ? `Bearer ${args.token}` : '');
    if (method === 'apps.connections.open') {
      if (auth !== `Bearer ${this.appToken}`) return ok({ ok: false, error: 'invalid_auth' });
      const ticket = randomUUID();
      this.tickets.add(ticket);
      return ok({ ok: true, url: `${this.url.replace('http', 'ws')}/link/?ticket=${ticket}` });
    }
    if (auth !== `Bearer ${this.token}`) return ok({ ok: false, error: 'invalid_auth' });
    if (args.blocks !== undefined) {
      const problems = blockKitProblems(blocksOf(args.blocks));
      if (problems.length) {
        this.refusedBlocks.push({ method, problems });
        return ok({ ok: false, error: 'invalid_blocks', errors: problems });
      }
    }
    switch (method) {
      case 'auth.test':
        return ok({
          ok: true,
          url: 'https://lifeboat-test.slack.com/',
          team: 'Test',
          user: 'lifeboat',
          team_id: 'T0TEST',
          user_id: 'U0BOT',
          bot_id: 'B0BOT',
        });
      case 'chat.postMessage':
        return this.chat.postMessage(args);
      case 'chat.update':
        return this.chat.update(args);
      case 'chat.postEphemeral':
        return this.chat.postEphemeral(method, args);
      case 'files.getUploadURLExternal':
        return this.files.getUploadUrl(args);
      case 'files.completeUploadExternal':
        if (typeof args.channel_id === 'string' && this.notInChannel.has(args.channel_id))
          return ok({ ok: false, error: 'not_in_channel' });
        return this.files.complete(args);
      default:
        return ok({ ok: false, error: 'unknown_method' });
    }
  }

  private responseUrl(id: string, raw: string) {
    const uses = (this.responseUses.get(id) ?? 0) + 1;
    this.responseUses.set(id, uses);
    if (uses > 5) return { status: 404, body: { ok: false, error: 'expired_url' } };
    const body = JSON.parse(raw) as Record<string, unknown>;
    if (body.blocks !== undefined) {
      const problems = blockKitProblems(body.blocks);
      if (problems.length) {
        this.refusedBlocks.push({ method: 'response_url', problems });
        return { status: 400, body: { ok: false, error: 'invalid_blocks', errors: problems } };
      }
    }
    this.responses.push({ id, body: JSON.parse(raw) as Record<string, unknown> });
    return ok({ ok: true });
  }

  // ---- Slack → the bot -------------------------------------------------------------

  /** Signs a body as Slack does: v0=hex(HMAC-SHA256(secret, `v0:{ts}:{body}`)). */
  sign(body: string, timestamp: number, secret = this.signingSecret): string {
    return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  }

  /** Builds a signed `/dr` slash command request; options forge or age it. */
  slashCommand(
    text: string,
    {
      user = 'U0ALICE',
      channel = 'C0OPS',
      trigger = `trig-${++this.seq}-${randomBytes(3).toString('hex')}`,
    } = {},
  ) {
    const fields = {
      token: 'deprecated-verification-token',
      team_id: 'T0TEST',
      team_domain: 'lifeboat-test',
      channel_id: channel,
      channel_name: 'ops',
      user_id: user,
      user_name: user.toLowerCase(),
      command: '/dr',
      text,
      api_app_id: 'A0LIFEBOAT',
      response_url: `${this.url}/response/${trigger}`,
      trigger_id: trigger,
    };
    return new URLSearchParams(fields).toString();
  }

  /** A `block_actions` payload for pressing a button of a message the bot posted. */
  buttonPress(
    message: SlackMessage,
    actionIndex: number,
    { user = 'U0BOB', trigger = `trig-${++this.seq}` } = {},
  ) {
    const actions = message.blocks.find((b) => b.type === 'actions') as
      | { elements: Record<string, unknown>[] }
      | undefined;
    const element = actions?.elements[actionIndex];
    if (!element) throw new Error(`message ${message.ts} has no button ${actionIndex}`);
    const payload = {
      type: 'block_actions',
      user: { id: user, username: user.toLowerCase(), team_id: 'T0TEST' },
      api_app_id: 'A0LIFEBOAT',
      token: 'deprecated-verification-token',
      container: {
        type: 'message',
        message_ts: message.ts,
        channel_id: message.channel,
        is_ephemeral: false,
      },
      trigger_id: trigger,
      team: { id: 'T0TEST', domain: 'lifeboat-test' },
      channel: { id: message.channel, name: 'ops' },
      message: { ts: message.ts, text: message.text, blocks: message.blocks },
      response_url: `${this.url}/response/${trigger}`,
      actions: [
        {
          type: 'button',
          action_id: element.action_id,
          block_id: 'dr-actions',
          text: element.text,
          value: element.value,
          action_ts: `${Date.now() / 1000}`,
        },
      ],
    };
    return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  }

  /** An Events API `app_mention` callback: `@Lifeboat <text>` said in a channel (JSON, as Slack sends it). */
  mention(
    text: string,
    {
      user = 'U0ALICE',
      channel = 'C0OPS',
      eventId = `Ev${++this.seq}${randomBytes(3).toString('hex').toUpperCase()}`,
      threadTs,
    }: { user?: string; channel?: string; eventId?: string; threadTs?: string } = {},
  ) {
    const ts = `${Math.floor(Date.now() / 1000)}.${String(++this.seq).padStart(6, '0')}`;
    // The channel now holds the person's message, so replies can go in its thread.
    this.messages.set(`${channel}/${ts}`, {
      channel,
      ts,
      text: `<@U0LIFEBOAT> ${text}`,
      blocks: [],
      updates: 0,
      user,
      ...(threadTs ? { threadTs } : {}),
    });
    return JSON.stringify({
      token: 'deprecated-verification-token',
      team_id: 'T0TEST',
      api_app_id: 'A0LIFEBOAT',
      event: {
        type: 'app_mention',
        user,
        text: `<@U0LIFEBOAT> ${text}`,
        ts,
        channel,
        event_ts: ts,
        ...(threadTs ? { thread_ts: threadTs } : {}),
      },
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: 'T0TEST', user_id: 'U0LIFEBOAT', is_bot: true }],
    });
  }

  /** POSTs a body to the bot (a form, or JSON for events), signed unless told otherwise. */
  async send(
    target: string,
    body: string,
    {
      timestamp = Math.floor(Date.now() / 1000),
      signature,
      retryNum,
    }: { timestamp?: number; signature?: string; retryNum?: number } = {},
  ): Promise<{ status: number; body: string; headers: Headers }> {
    const headers: Record<string, string> = {
      'content-type': body.startsWith('{')
        ? 'application/json'
        : 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(timestamp),
      'x-slack-signature': signature ?? this.sign(body, timestamp),
    };
    if (retryNum !== undefined) {
      headers['x-slack-retry-num'] = String(retryNum);
      headers['x-slack-retry-reason'] = 'http_timeout';
    }
    const res = await fetch(target, { method: 'POST', headers, body });
    return { status: res.status, body: await res.text(), headers: res.headers };
  }
}
