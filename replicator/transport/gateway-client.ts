/** The agent's, the CLI's and the workers' HTTPS client of the gateway, typed by transport/protocol.ts. */
import type { IncomingMessage } from 'node:http';
import { Agent, request } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { DrError, systemCode } from '../../core/errors.js';
import { type HostPort, tryHostPort } from '../../core/host-port.js';
import { gatewayHttpError, gatewayNetError } from './gateway-errors.js';
import type {
  AppStatus,
  BatchAck,
  CommitRequest,
  HeartbeatRequest,
  HeartbeatResponse,
  PointDetail,
  PointInfo,
  ProtectionState,
  SessionRequest,
  SessionResponse,
  ThrottleState,
} from './protocol.js';
import { RecordFramer } from './record-framer.js';
import { redirectTarget, sendAcross } from './send-across.js';

export interface GatewayClientOptions {
  /** HOST:PORT of the gateway. */
  address: string;
  /**
   * Every gateway serving the bucket (several gateways on one bucket), `address` among them or
   * not: a request goes on to the next when one cannot be reached, and follows a redirect to
   * the gateway holding the app.
   */
  addresses?: readonly string[];
  /** Mutual-TLS client options (certificate, key, our CA). */
  tls: ConnectionOptions;
  /** Per-request time limit; a stalled link fails instead of hanging. */
  timeoutMs?: number;
}

/** One record of a point as the gateway streams it. */
export interface StreamedRecord {
  block: number;
  seq: number;
  record: Buffer;
  /** Block `block` repeats this block's content: open the record as its (BlockContext.recordBlock). */
  recordBlock?: number;
}

/** The agent's and the CLI's side of the gateway's HTTPS API. */
export class GatewayClient {
  readonly address: string;
  /** Every gateway to try, `address` first. */
  readonly addresses: readonly string[];
  private readonly agent: Agent;
  readonly timeoutMs: number;
  /** The gateway that last served each app: its requests go there first. */
  readonly #holders = new Map<string, string>();

  /** What the client was made with: a worker thread makes its own client from it. */
  readonly options: GatewayClientOptions;

  constructor(options: GatewayClientOptions) {
    const { address, addresses = [], tls, timeoutMs = 60_000 } = options;
    this.options = options;
    this.address = address;
    this.addresses = [...new Set([address, ...addresses])];
    for (const a of this.addresses) {
      if (!tryHostPort(a, 1)) {
        throw new DrError(`gateway address ${JSON.stringify(a)} is not HOST:PORT`, {
          code: 'config_invalid',
          subject: a,
          remedy: 'list each gateway like 10.0.0.5:7443 in gateway.address (dr.yaml)',
        });
      }
    }
    this.timeoutMs = timeoutMs;
    this.agent = new Agent({ ...tls, keepAlive: true, maxSockets: 8 });
  }

  /**
   * The gateway that last answered for `app` (its holder, or any gateway for reads of committed
   * points), else the first listed: where record-fetch.ts opens its own connections.
   */
  addressFor(app: string): string {
    return this.#holders.get(app) ?? this.address;
  }

  /** Options for a client of its own (a worker thread's) that goes first where this one went for `app`. */
  optionsFor(app: string): GatewayClientOptions {
    return { ...this.options, address: this.addressFor(app), addresses: this.addresses };
  }

  private closed = false;

  /** Whether `close` was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Ends every connection; later calls fail at once instead of opening new ones. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  openSession(app: string, body: SessionRequest): Promise<SessionResponse> {
    return this.json('POST', `/v1/apps/${enc(app)}/session`, body);
  }

  closeSession(app: string, sessionId: string): Promise<unknown> {
    return this.json('DELETE', `/v1/apps/${enc(app)}/session?id=${enc(sessionId)}`);
  }

  sendBatch(app: string, sessionId: string, batch: Buffer[]): Promise<BatchAck> {
    return this.json('POST', `/v1/apps/${enc(app)}/batches`, batch, {
      'x-lifeboat-session': sessionId,
    });
  }

  commit(app: string, body: CommitRequest): Promise<PointInfo> {
    return this.json('POST', `/v1/apps/${enc(app)}/points`, body);
  }

  heartbeat(app: string, body: HeartbeatRequest): Promise<HeartbeatResponse> {
    return this.json('POST', `/v1/apps/${enc(app)}/heartbeat`, body);
  }

  /** Sets the app's bandwidth cap (null: remove it, the agent's own setting holds). */
  setThrottle(app: string, body: { maxRate: string | null; by: string }): Promise<ThrottleState> {
    return this.json('POST', `/v1/apps/${enc(app)}/throttle`, body);
  }

  /** Marks the app failed over (the gateway then refuses its agent) or protected again. */
  setProtection(app: string, body: ProtectionState): Promise<ProtectionState> {
    return this.json('POST', `/v1/apps/${enc(app)}/protection`, body);
  }

  /** Whether the app is protected or failed over (and by which operation). */
  protection(app: string): Promise<ProtectionState> {
    return this.json('GET', `/v1/apps/${enc(app)}/protection`);
  }

  points(app: string): Promise<PointInfo[]> {
    return this.json('GET', `/v1/apps/${enc(app)}/points`);
  }

  point(app: string, point: number | 'latest'): Promise<PointDetail> {
    return this.json('GET', `/v1/apps/${enc(app)}/points/${enc(String(point))}`);
  }

  status(app?: string): Promise<AppStatus[]> {
    return this.json('GET', app ? `/v1/status?app=${enc(app)}` : '/v1/status');
  }

  /** Block MACs of a point (or `head`: latest point plus pending batches), 20 bytes each: block u32 | mac[16]. */
  async macs(app: string, point: number | 'head', volume: string): Promise<Map<number, Buffer>> {
    const res = await this.send(
      'GET',
      `/v1/apps/${enc(app)}/points/${enc(String(point))}/volumes/${enc(volume)}/macs`,
    );
    const body = await readAll(res);
    const out = new Map<number, Buffer>();
    for (let o = 0; o + 20 <= body.length; o += 20)
      out.set(body.readUInt32BE(o), body.subarray(o + 4, o + 20));
    return out;
  }

  /**
   * Streams a point's records of one volume in block order: block u32 | seq u64 | len u32 | record.
   * With `since`, only the records that arrived after that batch.
   * Each record is a view into the receive buffer, valid until the next one is asked for.
   */
  async *records(
    app: string,
    point: number,
    volume: string,
    /** Only records of batches after this one (the seqTo of an earlier point). */
    since?: number,
    /** Only the blocks in [from, to) (an on-demand read and its read-ahead). */
    range?: { from: number; to: number },
  ): AsyncGenerator<StreamedRecord> {
    const framer = new RecordFramer();
    const body = await this.recordBytes(app, point, volume, since, range);
    for await (const chunk of body) yield* framer.push(chunk);
    if (framer.leftover > 0) throw this.endedEarly(app, volume);
  }

  /**
   * The raw bytes of `records` as they arrive (for a reader that frames them itself). A stream
   * cut off, or ended before the length the gateway announced, throws `gateway_unreachable`.
   */
  async recordBytes(
    app: string,
    point: number,
    volume: string,
    since?: number,
    range?: { from: number; to: number },
  ): Promise<AsyncIterable<Buffer>> {
    const query = new URLSearchParams();
    if (since !== undefined) query.set('since', String(since));
    if (range) {
      query.set('from', String(range.from));
      query.set('to', String(range.to));
    }
    const q = query.size > 0 ? `?${query}` : '';
    const res = await this.send(
      'GET',
      `/v1/apps/${enc(app)}/points/${enc(String(point))}/volumes/${enc(volume)}/records${q}`,
    );
    const ended = () => this.endedEarly(app, volume);
    return (async function* () {
      try {
        yield* res as AsyncIterable<Buffer>;
      } catch (err) {
        // A stream cut off after it began: the gateway met an error it could no longer answer.
        throw new DrError(
          `the gateway's record stream for ${app}/${volume} was cut off (${systemCode(err) ?? (err as Error).message})`,
          {
            code: 'gateway_unreachable',
            subject: `${app}/${volume}`,
            remedy:
              'run the command again; if it repeats, the gateway log names the record it could not read',
            cause: err,
          },
        );
      }
      if (!res.complete) throw ended();
    })();
  }

  private endedEarly(app: string, volume: string): DrError {
    return new DrError(`the gateway's record stream for ${app}/${volume} ended early`, {
      code: 'gateway_unreachable',
      subject: this.address,
      remedy: 'run the command again; check the gateway log if it repeats',
    });
  }

  private async json<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const res = await this.send(method, path, body, headers);
    const text = (await readAll(res)).toString('utf8');
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * Sends a request and returns a 2xx response; anything else becomes a DrError. An app's request
   * goes first to the gateway that last served the app; an unreachable gateway passes it to the
   * next one listed, and a redirect (307) to the gateway holding the app, a few hops at most.
   */
  private async send(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<IncomingMessage> {
    const app = /^\/v1\/apps\/([^/?]+)/.exec(path)?.[1];
    const first = app ? this.#holders.get(app) : undefined;
    const { res, address } = await sendAcross(
      [...new Set([...(first ? [first] : []), ...this.addresses])],
      `${method} ${path.split('?')[0]}`,
      (to) => this.sendTo(to, method, path, body, headers),
    );
    if (app) this.#holders.set(app, address);
    return res;
  }

  /** One request to one gateway. */
  private sendTo(
    address: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<IncomingMessage> {
    const { host, port } = tryHostPort(address, 1) as HostPort;
    const binary = Array.isArray(body) && body.every((b) => Buffer.isBuffer(b));
    const parts: Buffer[] | undefined =
      body === undefined
        ? undefined
        : binary
          ? (body as Buffer[])
          : [Buffer.from(JSON.stringify(body))];
    const length = parts?.reduce((n, b) => n + b.length, 0) ?? 0;
    const contentType = binary ? 'application/octet-stream' : 'application/json';
    if (this.closed) {
      return Promise.reject(
        new DrError(`the connection to the gateway at ${this.address} was closed`, {
          code: 'gateway_unreachable',
          subject: this.address,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host,
          port,
          method,
          path,
          agent: this.agent,
          servername: isIp(host) ? undefined : host,
          headers: {
            ...headers,
            ...(parts ? { 'content-type': contentType, 'content-length': length } : {}),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          if ((res.statusCode ?? 500) < 300) return resolve(res);
          const location =
            res.statusCode === 307 ? redirectTarget(res.headers.location) : undefined;
          readAll(res).then(
            (raw) => {
              const err = this.httpError(res.statusCode ?? 500, raw, address);
              reject(location ? Object.assign(err, { redirect: location }) : err);
            },
            (err) => reject(this.netError(err, address)),
          );
        },
      );
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })),
      );
      req.on('error', (err) => reject(this.netError(err, address)));
      if (parts) {
        req.cork();
        for (const p of parts) req.write(p);
        req.uncork();
      }
      req.end();
    });
  }

  /** The error for a non-2xx answer (from `address`), from the gateway's JSON error body. */
  httpError(status: number, raw: Buffer, address = this.address): DrError {
    return gatewayHttpError(status, raw, address);
  }

  /** The error for a connection to `address` that failed (TLS refused, nothing listening, timed out). */
  netError(err: unknown, address = this.address): DrError {
    return gatewayNetError(err, address);
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

function readAll(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', reject);
    res.on('aborted', () =>
      reject(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })),
    );
  });
}
