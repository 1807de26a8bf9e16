import { silentLog } from '../../core/log.js';
import { waitAndRetry } from '../wait-and-retry.js';

/** The most a single Retry-After is honoured before the call is given up (and the notice retried later). */
const MAX_WAIT_S = 60;

function retryAfterOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; retryAfter?: unknown };
  return e.code === 'slack_webapi_rate_limited_error' && typeof e.retryAfter === 'number'
    ? e.retryAfter
    : undefined;
}

/**
 * Runs a Web API call; when Slack answers `ratelimited`, waits the Retry-After it gave and tries
 * again (the WebClient is made with `rejectRateLimitedCalls` so the wait is ours to log and bound).
 */
export async function withRetryAfter<T>(
  method: string,
  call: () => Promise<T>,
  {
    log = silentLog,
    attempts = 4,
    sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  } = {},
): Promise<T> {
  return waitAndRetry(
    call,
    (err, attempt) => {
      const wait = retryAfterOf(err);
      return wait === undefined || attempt >= attempts || wait > MAX_WAIT_S
        ? undefined
        : wait * 1000;
    },
    {
      sleep,
      onWait: (err, attempt) =>
        log.warn(
          { method, retryAfterSeconds: retryAfterOf(err), attempt },
          'Slack rate-limited the call; waiting as asked',
        ),
    },
  );
}
