import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
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
  /** How the worker's guest names attached disks under by-id: virtio (default) or nvme. */
  diskInterface?: 'virtio' | 'nvme';
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
  /** The worker guest's /dev/disk/by-id, for the provider's `diskByIdDir`. */
  byIdDir: string;
  state: EcsState;
  /** Answers the next `times` calls of `action` with `error`. */
  inject(action: string, error: InjectedError, times?: number): void;
  close(): Promise<void>;
}

const VERSION = '2014-05-26';
/** The ACS3 algorithms ECS accepts, with the hash each uses for the payload, request and HMAC. */
const acs3Hashes: Record<string, string> = {
  'ACS3-HMAC-SHA256': 'sha256',
  'ACS3-HMAC-SM3': 'sm3',
};
/** RPC common parameters: not part of an action's own parameters. */
const rpcCommon = [
  'Action',
  'Version',
  'Format',
  'AccessKeyId',
  'Signature',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureNonce',
  'Timestamp',
  'SecurityToken',
];
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
  diskInterface = 'virtio',
}: EcsEmulatorOptions): Promise<EcsEmulator> {
  const state = createState(regionId, zoneId, dataDir, diskInterface);
  await mkdir(state.byIdDir, { recursive: true });
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
      if (req.method !== 'GET' && req.method !== 'POST') {
        throw new EcsApiError(405, 'UnsupportedHTTPMethod', `${req.method} is not supported.`);
      }
      // Parameters come in the query string, in a form body, or both.
      const params = new URLSearchParams(url.searchParams);
      const form = /^application\/x-www-form-urlencoded/i.test(header(req, 'content-type') ?? '');
      if (form)
        for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.append(k, v);
      let version: string | undefined;
      // Named before the signature is checked, so a refused call still shows in state.requests.
      action = header(req, 'x-acs-action') ?? params.get('Action') ?? '';
      if (header(req, 'authorization') !== undefined) {
        verifyAcs3(req, url, body);
        action = header(req, 'x-acs-action') ?? '';
        version = header(req, 'x-acs-version');
      } else if (params.has('Signature') || params.has('SignatureMethod')) {
        verifyRpc(req.method ?? 'GET', params);
        action = params.get('Action') ?? '';
        version = params.get('Version') ?? undefined;
        for (const common of rpcCommon) params.delete(common);
      } else {
        throw new EcsApiError(
          400,
          'IncompleteSignature',
          'The request carries neither an Authorization header (ACS3) nor a Signature parameter (RPC).',
        );
      }
      if (url.pathname !== '/') {
        throw new EcsApiError(404, 'InvalidAction.NotFound', `No API at ${url.pathname}.`);
      }
      if (!action) {
        throw new EcsApiError(
          400,
          'MissingParameter',
          'The input parameter "Action" that is mandatory for processing this request is not supplied.',
        );
      }
      if (version !== VERSION) {
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
      const token = idempotent.has(action) ? params.get('ClientToken') : null;
      const key = `${action}:${token}`;
      const canonical = canonicalQuery(params);
      const seen = token ? state.tokens.get(key) : undefined;
      if (seen && seen.query !== canonical) {
        throw new EcsApiError(
          400,
          'IdempotentParameterMismatch',
          'The ClientToken was used before with other parameters.',
        );
      }
      const result = seen?.body ?? (await run(state, new Query(params)));
      await tick(state);
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

  function checkKey(keyId: string): void {
    if (keyId !== accessKeyId) {
      throw new EcsApiError(
        404,
        'InvalidAccessKeyId.NotFound',
        'Specified access key is not found.',
      );
    }
  }

  function useNonce(nonce: string): void {
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

  function checkClock(at: number): void {
    if (!Number.isFinite(at) || Math.abs(Date.now() - at) > MAX_SKEW_MS) {
      throw new EcsApiError(
        400,
        'InvalidTimeStamp.Expired',
        'Specified time stamp or date value is expired.',
      );
    }
  }

  /**
   * ACS3 (V3 signature) as the gateway checks it: ACS3-HMAC-SHA256 or ACS3-HMAC-SM3, key,
   * payload hash, clock, nonce, every x-acs-* and host header signed, then the signature.
   */
  function verifyAcs3(req: IncomingMessage, url: URL, body: Buffer): void {
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
    const hash = acs3Hashes[algorithm];
    if (!hash) {
      throw new EcsApiError(
        400,
        'IncompleteSignature',
        `Signature algorithm ${algorithm} is not supported.`,
      );
    }
    checkKey(keyId);
    const signed = signedList.split(';');
    for (const name of Object.keys(req.headers)) {
      if ((name.startsWith('x-acs-') || name === 'host') && !signed.includes(name)) {
        throw new EcsApiError(400, 'IncompleteSignature', `The header ${name} is not signed.`);
      }
    }
    const payloadHash = createHash(hash).update(body).digest('hex');
    if (header(req, 'x-acs-content-sha256') !== payloadHash) {
      throw new EcsApiError(
        400,
        'SignatureDoesNotMatch',
        'x-acs-content-sha256 does not match the body.',
      );
    }
    checkClock(Date.parse(header(req, 'x-acs-date') ?? ''));
    const canonicalHeaders = signed.map((h) => `${h}:${(header(req, h) ?? '').trim()}\n`).join('');
    const canonicalRequest = [
      req.method,
      url.pathname,
      canonicalQuery(url.searchParams),
      canonicalHeaders,
      signedList,
      payloadHash,
    ].join('\n');
    const stringToSign = `${algorithm}\n${createHash(hash).update(canonicalRequest).digest('hex')}`;
    const expected = createHmac(hash, accessKeySecret).update(stringToSign).digest();
    if (!sameBytes(Buffer.from(signature, 'hex'), expected)) {
      throw new EcsApiError(
        400,
        'SignatureDoesNotMatch',
        'The request signature does not conform to Aliyun standards.',
      );
    }
    useNonce(header(req, 'x-acs-signature-nonce') ?? '');
  }

  /**
   * The RPC (V2) signature: common parameters in the query or the form body, and
   * Signature = base64(HMAC-SHA1(secret + '&', METHOD&%2F&percent(canonical parameters))).
   */
  function verifyRpc(method: string, params: URLSearchParams): void {
    for (const name of ['AccessKeyId', 'SignatureMethod', 'SignatureVersion', 'SignatureNonce']) {
      if (!params.get(name)) {
        throw new EcsApiError(
          400,
          'MissingParameter',
          `The input parameter "${name}" that is mandatory for processing this request is not supplied.`,
        );
      }
    }
    const signature = params.get('Signature');
    if (!signature) {
      throw new EcsApiError(400, 'IncompleteSignature', 'The Signature parameter is missing.');
    }
    const sigMethod = params.get('SignatureMethod');
    if (sigMethod !== 'HMAC-SHA1' || params.get('SignatureVersion') !== '1.0') {
      throw new EcsApiError(
        400,
        'InvalidSignatureMethod',
        `Signature method ${sigMethod} is not supported: use HMAC-SHA1, SignatureVersion 1.0.`,
      );
    }
    checkKey(params.get('AccessKeyId') ?? '');
    const ts = params.get('Timestamp') ?? '';
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(ts)) {
      throw new EcsApiError(
        400,
        'InvalidTimeStamp.Format',
        'Specified time stamp or date value is not well formatted.',
      );
    }
    checkClock(Date.parse(ts));
    const rest = new URLSearchParams([...params].filter(([k]) => k !== 'Signature'));
    const stringToSign = `${method}&${encode('/')}&${encode(canonicalQuery(rest))}`;
    const expected = createHmac('sha1', `${accessKeySecret}&`).update(stringToSign).digest();
    if (!sameBytes(Buffer.from(signature, 'base64'), expected)) {
      throw new EcsApiError(
        400,
        'SignatureDoesNotMatch',
        'Specified signature is not matched with our calculation.',
      );
    }
    useNonce(params.get('SignatureNonce') ?? '');
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    endpoint,
    byIdDir: state.byIdDir,
    state,
    inject(action, error, times = 1) {
      const queue = injected.get(action) ?? [];
      queue.push({ error, times });
      injected.set(action, queue);
    },
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      });
      // Commands still running on emulated guests end at their own timeouts.
      await Promise.allSettled(state.running);
    },
  };
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Sorted `key=value` pairs, values percent-encoded the RFC 3986 way, as ACS3 signs them. */
function canonicalQuery(params: URLSearchParams): string {
  const keys = [...new Set(params.keys())].sort();
  return keys.map((k) => `${encode(k)}=${encode(params.get(k) ?? '')}`).join('&');
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
