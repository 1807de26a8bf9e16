import Ecs from '@alicloud/ecs20140526';
import { $OpenApiUtil } from '@alicloud/openapi-core';
import { DrError, errorMessage } from '../../core/errors.js';

type EcsClass = typeof Ecs.default;
export type EcsClient = InstanceType<EcsClass>;

/**
 * The SDK is CommonJS with `exports.default = Client`: Node's ESM loader gives module.exports as
 * the default import (the class is at `.default`), Vite's interop (vitest) gives the class itself.
 */
const EcsClient: EcsClass = (Ecs as { default?: EcsClass }).default ?? (Ecs as unknown as EcsClass);

export interface EcsClientOptions {
  regionId: string;
  /** Host (and port) of the ECS API; `ecs.<regionId>.aliyuncs.com` by default. */
  endpoint?: string;
  protocol?: 'http' | 'https';
  accessKeyId: string;
  accessKeySecret: string;
  retry?: RetryPolicy;
}

/** Retries of throttled and 5xx calls: exponential backoff with jitter. */
export interface RetryPolicy {
  /** Calls in all, the first included; 6 by default. */
  attempts?: number;
  /** Wait before the first retry, doubling each time; 500 ms by default. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

type RetryOptions = NonNullable<$OpenApiUtil.Config['retryOptions']>;
type RetryContext = Parameters<
  RetryOptions['retryCondition'][number]['backoff']['getDelayTime']
>[0];

/** Error codes of calls worth retrying besides ThrottlingError and ServerError: the link, not the request. */
const transientCodes = [
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ServiceUnavailable',
];

function retryOptions({
  attempts = 6,
  baseDelayMs = 500,
  maxDelayMs = 20_000,
}: RetryPolicy): RetryOptions {
  return {
    retryable: true,
    retryCondition: [
      {
        maxAttempts: attempts,
        exception: ['ThrottlingError', 'ServerError'],
        errorCode: transientCodes,
        maxDelay: maxDelayMs,
        backoff: {
          policy: 'ExponentialWithEqualJitter',
          getDelayTime: (ctx: RetryContext) => {
            const ceiling = Math.min(
              maxDelayMs,
              baseDelayMs * 2 ** Math.max(0, ctx.retriesAttempted - 1),
            );
            return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
          },
        },
      },
    ],
    noRetryCondition: [],
  };
}

/** An ECS client with its endpoint, credentials and retries set explicitly (never from the environment). */
export function createEcsClient(o: EcsClientOptions): EcsClient {
  const config = new $OpenApiUtil.Config({
    accessKeyId: o.accessKeyId,
    accessKeySecret: o.accessKeySecret,
    regionId: o.regionId,
    endpoint: o.endpoint ?? `ecs.${o.regionId}.aliyuncs.com`,
    protocol: o.protocol ?? 'https',
    connectTimeout: 10_000,
    readTimeout: 60_000,
  });
  config.retryOptions = retryOptions(o.retry ?? {});
  return new EcsClient(config);
}

/** A request model built from typed fields (the models' own constructors take `any`). */
export function make<T extends object>(Model: new () => T, fields: Partial<T>): T {
  return Object.assign(new Model(), fields);
}

/** An ECS failure with Alibaba's error code and request id, for the job's record and the user. */
export class EcsError extends DrError {
  constructor(
    message: string,
    readonly ecsCode: string,
    readonly requestId: string | undefined,
    subject: string,
    remedy: string | undefined,
  ) {
    super(message, { code: 'provider_failed', subject, ...(remedy ? { remedy } : {}) });
    this.name = 'EcsError';
  }
}

const remedies: [RegExp, string][] = [
  [
    /^QuotaExceed/,
    'raise the quota in the ECS console (Quota Center) or choose a smaller instance type',
  ],
  [/^InvalidAccessKeyId/, 'check the access key id configured for the alicloud provider'],
  [/^SignatureDoesNotMatch$/, 'check the access key secret configured for the alicloud provider'],
  [/^Forbidden/, 'grant the RAM user of this access key permission for the ECS action'],
  [
    /^InvalidTimeStamp/,
    "correct this machine's clock (ECS refuses requests more than 15 minutes off)",
  ],
  [
    /NoStock|OutOfStock/,
    'choose another instance type or zone; the zone has no capacity for this type',
  ],
];

/**
 * Runs one ECS call, turning whatever it throws into a DrError that carries Alibaba's Code and
 * Message. The secret is scrubbed from the text, and the SDK's error is not kept as the cause,
 * so nothing that reaches logs or chat can hold credentials.
 */
export async function ecsCall<T>(
  action: string,
  secret: string,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toEcsError(action, secret, err);
  }
}

export function toEcsError(action: string, secret: string, err: unknown): DrError {
  const scrub = (s: string) => (secret ? s.split(secret).join('***') : s);
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    code?: unknown;
    data?: { Code?: unknown; Message?: unknown; RequestId?: unknown };
    requestId?: unknown;
  };
  const data = e.data && typeof e.data === 'object' ? e.data : undefined;
  const code =
    typeof data?.Code === 'string' ? data.Code : typeof e.code === 'string' ? e.code : '';
  if (typeof data?.Message === 'string' && code) {
    const requestId = typeof data.RequestId === 'string' ? data.RequestId : undefined;
    const remedy = remedies.find(([re]) => re.test(code))?.[1];
    return new EcsError(scrub(`ECS ${code}: ${data.Message}`), code, requestId, action, remedy);
  }
  return new EcsError(
    scrub(`ECS ${action} failed: ${errorMessage(err)}`),
    code || 'Unknown',
    undefined,
    action,
    'check that the ECS endpoint is reachable from this machine',
  );
}
