/** `/slack/events`: verifies every request before anything of it reaches Redis or Bolt's listeners. */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

/**
 * How a request checked out: `signed` by Slack (signature and 5-minute window), or Slack's
 * `ssl_check` (unsigned by design; Bolt answers it and drops anything else in its body).
 * Throws `SlackRequestRefused` otherwise.
 */
export type SlackVerdict = 'signed' | 'ssl-check';

/** A request `verify` refused: `status` is what it is answered with (401, or 413 for a body too big). */
export class SlackRequestRefused extends Error {
  constructor(
    message: string,
    readonly status: 401 | 413,
  ) {
    super(message);
  }
}

export interface SlackEventsRouteOptions {
  /** Bolt's HTTPReceiver listener: verifies again (from the buffered body), acks, dispatches. */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Reads the body (bounded) and checks the signature and the 5-minute window; built from Bolt's
   * own functions by `slackVerifier`.
   */
  verify: (req: IncomingMessage) => Promise<SlackVerdict>;
  redis: Redis;
  /** Redis key prefix for the signatures seen. */
  base: string;
  log: Logger;
  now?: () => number;
  path?: string;
}

/** How far ahead of our clock a request's timestamp may be (Bolt only refuses old ones). */
const FUTURE_SKEW_S = 60;
/** Bolt refuses requests older than 5 minutes, so a signature need not be remembered longer. */
const SEEN_FOR_S = 10 * 60;

/**
 * `/slack/events` in front of Bolt. In this order, so that nothing unauthenticated writes to Redis:
 * a timestamp from the future is refused; the body is read (at most the limit) and its signature
 * and age checked; only then is a replay (same signature, so same timestamp and body) looked up
 * and refused; then Bolt takes over. A request carrying `X-Slack-Retry-Num` is Slack trying
 * again: it passes, and the delivery-id check in the listeners makes sure it runs nothing twice.
 */
export function slackEventsRoute({
  listener,
  verify,
  redis,
  base,
  log,
  now = Date.now,
  path = '/slack/events',
}: SlackEventsRouteOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== path) return false;
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return true;
    }
    const ts = Number(req.headers['x-slack-request-timestamp']);
    if (Number.isFinite(ts) && ts > now() / 1000 + FUTURE_SKEW_S) {
      log.warn({ ts }, 'Slack request refused: timestamp in the future');
      res.writeHead(401).end();
      return true;
    }
    let verdict: SlackVerdict;
    try {
      verdict = await verify(req);
    } catch (err) {
      const status = err instanceof SlackRequestRefused ? err.status : 401;
      log.warn({ err: errorMessage(err), status }, 'Slack request refused');
      res.writeHead(status, { connection: 'close' }).end();
      return true;
    }
    if (verdict === 'signed') {
      const signature = String(req.headers['x-slack-signature']);
      const seen = `${base}${createHash('sha256').update(signature).digest('hex')}`;
      const fresh = (await redis.set(seen, '1', 'EX', SEEN_FOR_S, 'NX')) === 'OK';
      if (!fresh && req.headers['x-slack-retry-num'] === undefined) {
        log.warn('Slack request refused: replay of a request already received');
        res.writeHead(401).end();
        return true;
      }
    }
    listener(req, res);
    return true;
  };
}

/** The functions of `@slack/bolt` the verifier uses (passed in: Bolt is loaded only when Slack is on). */
export interface BoltVerifyFunctions {
  HTTPModuleFunctions: {
    bufferIncomingMessage: (
      req: IncomingMessage,
      bodyLimit?: number,
    ) => Promise<IncomingMessage & { rawBody: Buffer }>;
    isRawBodyError: (err: unknown) => boolean;
  };
  verifySlackRequest: (o: {
    signingSecret: string;
    body: string;
    headers: { 'x-slack-signature': string; 'x-slack-request-timestamp': number };
    nowMilliseconds?: number;
  }) => void;
}

/** Slack's requests are small (a slash command, an event, a button press): more is refused unread. */
export const SLACK_BODY_LIMIT = 1024 * 1024;

/**
 * The check `slackEventsRoute` runs, with Bolt's own functions: the body is buffered on the
 * request (Bolt's listener reuses it), the signature and the 5-minute window checked.
 */
export function slackVerifier(
  bolt: BoltVerifyFunctions,
  signingSecret: string,
  now: () => number = Date.now,
): (req: IncomingMessage) => Promise<SlackVerdict> {
  return async (req) => {
    let body: string;
    try {
      body = (
        await bolt.HTTPModuleFunctions.bufferIncomingMessage(req, SLACK_BODY_LIMIT)
      ).rawBody.toString();
    } catch (err) {
      const tooBig =
        bolt.HTTPModuleFunctions.isRawBodyError(err) &&
        (err as { type?: string }).type === 'entity.too.large';
      throw new SlackRequestRefused(
        tooBig
          ? `body over ${SLACK_BODY_LIMIT} bytes`
          : `cannot read the body: ${errorMessage(err)}`,
        tooBig ? 413 : 401,
      );
    }
    const signature = req.headers['x-slack-signature'];
    const ts = req.headers['x-slack-request-timestamp'];
    if (typeof signature !== 'string' || signature === '' || typeof ts !== 'string') {
      if (isSslCheck(req, body)) return 'ssl-check';
      throw new SlackRequestRefused('no signature or timestamp', 401);
    }
    try {
      bolt.verifySlackRequest({
        signingSecret,
        body,
        headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': Number(ts) },
        nowMilliseconds: now(),
      });
    } catch (err) {
      if (isSslCheck(req, body)) return 'ssl-check';
      throw new SlackRequestRefused(errorMessage(err), 401);
    }
    return 'signed';
  };
}

/** Slack's certificate check (`ssl_check=1`): Bolt answers it without a signature. */
function isSslCheck(req: IncomingMessage, body: string): boolean {
  return (
    req.headers['content-type'] === 'application/x-www-form-urlencoded' &&
    new URLSearchParams(body).get('ssl_check') === '1'
  );
}
