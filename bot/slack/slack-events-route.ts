import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/log.js';

export interface SlackEventsRouteOptions {
  /** Bolt's HTTPReceiver listener: verifies the signature and the 5-minute window, acks, dispatches. */
  listener: (req: IncomingMessage, res: ServerResponse) => void;
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
 * `/slack/events` in front of Bolt: refuses what Bolt lets through — a timestamp from the future and
 * a replayed request (same signature, so same timestamp and body) — then hands over to Bolt.
 * A request carrying `X-Slack-Retry-Num` is Slack trying again: it passes, and the delivery-id
 * check in the listeners makes sure it runs nothing twice.
 */
export function slackEventsRoute({
  listener,
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
    const signature = req.headers['x-slack-signature'];
    if (typeof signature === 'string' && signature !== '') {
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
