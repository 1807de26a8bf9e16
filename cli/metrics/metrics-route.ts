import type { Registry } from 'prom-client';
import { type AccessRule, checkAccess } from '../web/access-rule.js';
import { pathOf, type Route, sendText } from '../web/route.js';

/** `GET /metrics` in Prometheus' text format, behind the access rule; `before` refreshes what is read from elsewhere. */
export function metricsRoute(
  registry: Registry,
  access: AccessRule,
  before?: () => Promise<void>,
): Route {
  return async (req, res) => {
    if (pathOf(req) !== '/metrics') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'use GET /metrics');
      return true;
    }
    const verdict = checkAccess(req, access);
    if (!verdict.ok) {
      sendText(res, verdict.status, verdict.message);
      return true;
    }
    await before?.();
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
