import type { ServerResponse } from 'node:http';
import { type AccessRule, checkAccess, TOKEN_COOKIE } from '../web/access-rule.js';
import { pathOf, type Route, sendJsonBody, sendText } from '../web/route.js';
import type { PageActions } from './page-actions.js';
import { renderStatusPage, STATUS_PAGE_CSP } from './render-status-page.js';
import { collectStatus, type SnapshotSources } from './status-snapshot.js';

export interface StatusRoutesOptions extends SnapshotSources {
  access: AccessRule;
  /** Hours the RPO chart spans unless `?hours=` says otherwise (1 to 24). */
  windowHours?: number;
  /** The buttons (sign-in, drill, approve), where the page runs beside an engine. */
  actions?: PageActions;
}

/** `?hours=N`: a whole number from 1 to 24, or the default. */
function hoursOf(url: URL, fallback: number, res: ServerResponse): number | undefined {
  const raw = url.searchParams.get('hours');
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 24) {
    sendText(
      res,
      400,
      `hours=${JSON.stringify(raw).slice(0, 40)} is not a whole number of hours from 1 to 24`,
    );
    return undefined;
  }
  return n;
}

/**
 * The status page (`GET /`, `GET /status`) and its JSON (`GET /api/status`), as routes for
 * `dr serve`'s HTTP server. A remote reader who opens `/?token=…` once gets the token as an
 * HttpOnly cookie and is sent on to the page without it in the address bar.
 */
export function statusRoutes({
  access,
  windowHours = 6,
  actions,
  ...sources
}: StatusRoutesOptions): Route[] {
  const guard = (req: Parameters<Route>[0], res: ServerResponse): boolean => {
    const verdict = checkAccess(req, access);
    if (!verdict.ok) sendText(res, verdict.status, verdict.message);
    return verdict.ok;
  };
  const page: Route = async (req, res) => {
    const path = pathOf(req);
    if (path !== '/' && path !== '/status') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, `use GET ${path}`);
      return true;
    }
    if (!guard(req, res)) return true;
    const url = new URL(req.url ?? '/', 'http://x');
    const token = url.searchParams.get('token');
    if (token !== null) {
      url.searchParams.delete('token');
      res.writeHead(303, {
        location: `${path}${url.search}`,
        'set-cookie': `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`,
        'cache-control': 'no-store',
      });
      res.end();
      return true;
    }
    const hours = hoursOf(url, windowHours, res);
    if (hours === undefined) return true;
    const html = renderStatusPage(await collectStatus(sources, hours), 10, actions?.context(req));
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': STATUS_PAGE_CSP,
      'x-content-type-options': 'nosniff',
      // Same-origin: the page's own form posts carry its Origin, which /act checks.
      'referrer-policy': 'same-origin',
    });
    res.end(req.method === 'HEAD' ? undefined : html);
    return true;
  };
  const api: Route = async (req, res) => {
    if (pathOf(req) !== '/api/status') return false;
    if (req.method !== 'GET') {
      sendText(res, 405, 'use GET /api/status');
      return true;
    }
    if (!guard(req, res)) return true;
    const hours = hoursOf(new URL(req.url ?? '/', 'http://x'), windowHours, res);
    if (hours === undefined) return true;
    sendJsonBody(res, 200, await collectStatus(sources, hours));
    return true;
  };
  return [page, api, ...(actions?.routes ?? [])];
}
