// A call DingTalk refused, and whether it was for the call rate (worth waiting).
/** A session webhook's errcode for "send too fast" (a robot may post 20 messages a minute). */
const WEBHOOK_TOO_FAST = '130101';

export class DingTalkApiError extends Error {
  /** DingTalk refused for the call rate (QPS limits; a robot's 20 messages a minute): worth waiting. */
  readonly throttled: boolean;

  constructor(
    readonly path: string,
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`DingTalk ${path} answered ${status} ${code}: ${message}`);
    this.throttled =
      status === 429 || /QpsLimit|Throttl|RateLimit/i.test(code) || code === WEBHOOK_TOO_FAST;
  }
}
