import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { isTransient } from '../transport/gateway-errors.js';
import { awaitsTakeover, TAKEOVER_RETRY_MS } from '../transport/send-across.js';

export interface RetryOptions {
  what: string;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** First pause; doubles up to `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called with each transient failure (for status reporting). */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Retries an operation while it fails transiently (gateway down, link cut,
 * gateway disk full), backing off; a refusal is thrown at once. It stops
 * only when `signal` aborts. While a takeover is due (the app's holder is
 * gone, another gateway answered) it asks every TAKEOVER_RETRY_MS instead.
 */
export async function withRetry<T>(
  op: () => Promise<T>,
  { what, log, signal, baseDelayMs = 250, maxDelayMs = 15_000, onRetry }: RetryOptions,
): Promise<T> {
  let delay = baseDelayMs;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      const result = await op();
      if (attempt > 1)
        log.info({ what, attempts: attempt }, 'gateway reachable again; catching up');
      return result;
    } catch (err) {
      if (!isTransient(err)) throw err;
      onRetry?.(err, attempt);
      const takeover = awaitsTakeover(err);
      const pause = takeover ? TAKEOVER_RETRY_MS : delay;
      if (attempt === 1 || (attempt & (attempt - 1)) === 0) {
        log.warn(
          { what, attempt, retryInMs: pause, err: errorMessage(err) },
          'gateway not available; retrying',
        );
      }
      await sleep(pause, undefined, signal ? { signal } : undefined);
      if (!takeover) delay = Math.min(maxDelayMs, delay * 2);
    }
  }
}
