import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { actions, idempotent } from './ecs-emulator-actions.js';
import { Query } from './ecs-emulator-query.js';
import {
  createState,
  defaultTimings,
  EcsApiError,
  type EcsState,
  type EcsTimings,
  tick,
} from './ecs-emulator-state.js';

export type { EcsState, EcsTimings } from './ecs-emulator-state.js';

export interface EcsEmulatorOptions {
  /** The one key pair the emulated account accepts. */
  accessKeyId: string;
  accessKeySecret: string;
  /** Where disk and snapshot contents live as sparse files. */
  dataDir: string;
  regionId?: string;
  zoneId?: string;
  /** How long status changes take; short by default. */
  timings?: Partial<EcsTimings>;
}

/** An error to answer instead of running the action. */
export interface InjectedError {
  status: number;
  code: string;
  message?: string;
}

export interface EcsEmulator {
  /** host:port, for the SDK's `endpoint` (with protocol 'http'). */
  endpoint: string;
  state: EcsState;
  /** Answers the next `times` calls of `action` with `error`. */
  inject(action: string, error: InjectedError, times?: number): void;
  close(): Promise<void>;
}

const VERSION = '2014-05-26';
const ALGORITHM = 'ACS3-HMAC-SHA256';
/** ECS refuses requests whose x-acs-date is further than this from its clock. */
const MAX_SKEW_MS = 15 * 60_000;

/**
 * A local stand-in for the ECS OpenAPI (version 2014-05-26) that the real
 * `@alicloud/ecs20140526` client talks to over HTTP: ACS3-HMAC-SHA256 signatures,
 * flattened query parameters, PascalCase JSON with list wrappers, and ECS's error shape.
 */
export async function startEcsEmulator({
  accessKeyId,
  accessKeySecret,
  dataDir,
  regionId = 'cn-hangzhou',
  zoneId = 'cn-hangzhou-h',
  timings,
}: EcsEmulatorOptions): Promise<EcsEmulator> {
  const state = createState(regionId, zoneId, dataDir);
  state.timings = { ...defaultTimings, ...timings };
  const injected = new Map<string, { error: InjectedError; times: number }[]>();
  const nonces = new Map<string, number>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID().toUpperCase();
    const send = (status: number, body: Record<string, unknown>) => {
      const text = JSON.stringify({ RequestId: requestId, ...body });
      res.writeHead(status, {
        'content-type': 'application/json;charset=utf-8',
        'x-acs-request-id': requestId,
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    let action = '';
    try {
      const body = await readBody(req);
      const url = new URL(req.url ?? '/', 'http://emulator');
      action = header(req, 'x-acs-action') ?? '';
      verify(req, url, body);
      if (url.pathname !== '/') {
        throw new EcsApiError(404, 'InvalidAction.NotFound', `No API at ${url.pathname}.`);
      }
      if (header(req, 'x-acs-version') !== VERSION) {
        throw new EcsApiError(400, 'InvalidVersion', 'Specified parameter Version is not valid.');
      }
      const run = actions[action];
      if (!run) {
        throw new EcsApiError(
          404,
          'InvalidAction.NotFound',
          `Specified api ${action} is not found.`,
        );
      }
      const queue = injected.get(action);
      const next = queue?.[0];
      if (queue && next) {
        next.times -= 1;
        if (next.times <= 0) queue.shift();
        throw new EcsApiError(
          next.error.status,
          next.error.code,
          next.error.message ?? next.error.code,
        );
      }
      await tick(state);
      const token = idempotent.has(action) ? url.searchParams.get('ClientToken') : null;
      const key = `${action}:${token}`;
      const canonical = canonicalQuery(url.searchParams);
      const seen = token ? state.tokens.get(key) : undefined;
      if (seen && seen.query !== canonical) {
        throw new EcsApiError(
          400,
          'IdempotentParameterMismatch',
          'The ClientToken was used before with other parameters.',
        );
      }
      const result = seen?.body ?? (await run(state, new Query(url.searchParams)));
      if (token && !seen) state.tokens.set(key, { query: canonical, body: result });
      state.requests.push({ action, status: 200 });
      send(200, result);
    } catch (err) {
      const e =
        err instanceof EcsApiError
          ? err
          : new EcsApiError(
              500,
              'InternalError',
              `The request processing has failed: ${String(err)}`,
            );
      if (action) state.requests.push({ action, status: e.status, code: e.code });
      send(e.status, { Code: e.code, Message: e.message, HostId: endpoint });
    }
  }

  /** ACS3-HMAC-SHA256 as the real gateway checks it: key, payload hash, clock, nonce, signature. */
  function verify(req: IncomingMessage, url: URL, body: Buffer): void {
    const auth = header(req, 'authorization') ?? '';
    const m = /^(\S+) Credential=([^,]*),SignedHeaders=([^,]*),Signature=([0-9a-f]*)$/.exec(auth);
    if (!m) {
      throw new EcsApiError(
        400,
        'IncompleteSignature',
        'The Authorization header is missing or malformed.',
      );
    }
    const [, algorithm = '', keyId = '', signedList = '', signature = ''] = m;
    if (algorithm !== ALGORITHM) {
      throw new EcsApiError(
        400,
        'IncompleteSignature',
        `Signature algorithm ${algorithm} is not supported.`,
      );
    }
    if (keyId !== accessKeyId) {
      throw new EcsApiError(
        404,
        'InvalidAccessKeyId.NotFound',
        'Specified access key is not found.',
      );
    }
    const signed = signedList.split(';');
    for (const name of Object.keys(req.headers)) {
      if ((name.startsWith('x-acs-') || name === 'host') && !signed.includes(name)) {
        throw new EcsApiError(400, 'IncompleteSignature', `The header ${name} is not signed.`);
      }
    }
    const payloadHash = createHash('sha256').update(body).digest('hex');
    if (header(req, 'x-acs-content-sha256') !== payloadHash) {
      throw new EcsApiError(
        400,
        'SignatureDoesNotMatch',
        'x-acs-content-sha256 does not match the body.',
      );
    }
    const date = Date.parse(header(req, 'x-acs-date') ?? '');
    if (!Number.isFinite(date) || Math.abs(Date.now() - date) > MAX_SKEW_MS) {
      throw new EcsApiError(
        400,
        'InvalidTimeStamp.Expired',
        'Specified time stamp or date value is expired.',
      );
    }
    const canonicalHeaders = signed.map((h) => `${h}:${(header(req, h) ?? '').trim()}\n`).join('');
    const canonicalRequest = [
      req.method,
      url.pathname,
      canonicalQuery(url.searchParams),
      canonicalHeaders,
      signedList,
      payloadHash,
    ].join('\n');
    const stringToSign = `${ALGORITHM}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
    const expected = createHmac('sha256', accessKeySecret).update(stringToSign).digest();
    const given = Buffer.from(signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new EcsApiError(
        400,
        'SignatureDoesNotMatch',
        'The request signature does not conform to Aliyun standards.',
      );
    }
    const nonce = header(req, 'x-acs-signature-nonce') ?? '';
    const now = Date.now();
    for (const [n, at] of nonces) if (now - at > MAX_SKEW_MS) nonces.delete(n);
    if (!nonce || nonces.has(nonce)) {
      throw new EcsApiError(
        400,
        'SignatureNonceUsed',
        'Specified signature nonce was used already.',
      );
    }
    nonces.set(nonce, now);
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    endpoint,
    state,
    inject(action, error, times = 1) {
      const queue = injected.get(action) ?? [];
      queue.push({ error, times });
      injected.set(action, queue);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Sorted `key=value` pairs, values percent-encoded the RFC 3986 way, as ACS3 signs them. */
function canonicalQuery(params: URLSearchParams): string {
  const keys = [...new Set(params.keys())].sort();
  return keys.map((k) => `${k}=${encode(params.get(k) ?? '')}`).join('&');
}

function encode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
