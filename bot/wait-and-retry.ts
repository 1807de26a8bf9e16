/**
 * Runs `call`; while a failure is worth waiting out (`waitFor` names a wait
 * in ms for the failure of that attempt, counted from 1), tells `onWait`,
 * waits and calls again; any other failure is thrown. The one bounded retry
 * of the chat surfaces: Slack's Retry-After, DingTalk's throttling.
 */
export async function waitAndRetry<T>(
  call: () => Promise<T>,
  waitFor: (err: unknown, attempt: number) => number | undefined,
  {
    onWait = () => undefined,
    sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  }: {
    onWait?: (err: unknown, attempt: number, waitMs: number) => void;
    sleep?: (ms: number) => Promise<void>;
  } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const wait = waitFor(err, attempt);
      if (wait === undefined) throw err;
      onWait(err, attempt, wait);
      await sleep(wait);
    }
  }
}
