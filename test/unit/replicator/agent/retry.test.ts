import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { createLogger } from '../../../../core/log.js';
import { withRetry } from '../../../../replicator/agent/retry.js';
import { TAKEOVER_RETRY_MS } from '../../../../replicator/transport/send-across.js';

const down = () => new DrError('cannot reach the gateway', { code: 'gateway_unreachable' });
/** What sendAcross throws when the app's holder is gone and another gateway answered. */
const holderGone = () => Object.assign(down(), { awaitsTakeover: true });

/** Runs withRetry over an op failing with `errors` in turn, then answering: the pauses it logged. */
async function pausesLogged(errors: Array<() => Error>, baseDelayMs: number): Promise<number[]> {
  const lines: string[] = [];
  const log = createLogger({
    level: 'warn',
    destination: new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  });
  let calls = 0;
  const answer = await withRetry(
    async () => {
      const fail = errors[calls++];
      if (fail) throw fail();
      return 'ok';
    },
    { what: 'send batch', log, baseDelayMs },
  );
  expect(answer).toBe('ok');
  expect(calls).toBe(errors.length + 1);
  return lines.map((l) => (JSON.parse(l) as { retryInMs: number }).retryInMs);
}

describe('withRetry', () => {
  it('backs off, doubling, while no gateway answers', async () => {
    // Logged at attempts 1, 2 and 4.
    expect(await pausesLogged([down, down, down, down], 20)).toEqual([20, 40, 160]);
  });

  it('asks every TAKEOVER_RETRY_MS while a takeover is due (the holder gone, another gateway answering), however long it had backed off', async () => {
    // Logged at attempts 1, 2, 4 and 8: the backoff had reached 1600 ms when the takeover began.
    expect(await pausesLogged([down, down, down, ...Array(5).fill(holderGone)], 400)).toEqual([
      400,
      800,
      TAKEOVER_RETRY_MS,
      TAKEOVER_RETRY_MS,
    ]);
    expect(TAKEOVER_RETRY_MS).toBeLessThan(1600);
  });
});
