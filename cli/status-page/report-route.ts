import type { ServerResponse } from 'node:http';
import { DEFAULT_REPORT_DAYS } from '../../engine/contract.js';
import { gatherDrillReport } from '../../engine/drill-report.js';
import { renderDrillReport } from '../../engine/render-drill-report.js';
import { MAX_REPORT_DAYS } from '../../engine/verb-flags.js';
import { pathOf, type Route, sendText } from '../web/route.js';
import type { SnapshotSources } from './status-snapshot.js';

/** A drawn report is served again for this long: the page reloads every few seconds, drawing takes longer. */
const CACHE_MS = 60_000;

/**
 * `GET /report/<app>.png?days=N`: the app's drill report picture, as chat gets it, behind the
 * status page's access rule (`guard`). Unknown apps are 404, a bad `days` 400, one line each.
 */
export function reportRoute(
  sources: Pick<SnapshotSources, 'redis' | 'prefix' | 'configuredApps' | 'objectives' | 'now'>,
  guard: (req: Parameters<Route>[0], res: ServerResponse) => boolean,
): Route {
  const cache = new Map<string, { at: number; png: Buffer }>();
  return async (req, res) => {
    const m = /^\/report\/([^/]+)\.png$/.exec(pathOf(req));
    if (!m) return false;
    if (req.method !== 'GET') {
      sendText(res, 405, 'use GET /report/<app>.png');
      return true;
    }
    if (!guard(req, res)) return true;
    const app = decodeURIComponent(m[1] ?? '');
    if (!sources.configuredApps().includes(app)) {
      sendText(res, 404, `no app ${JSON.stringify(app).slice(0, 60)} in dr.yaml`);
      return true;
    }
    const raw = new URL(req.url ?? '/', 'http://x').searchParams.get('days');
    const days = raw === null ? DEFAULT_REPORT_DAYS : Number(raw);
    if (!Number.isInteger(days) || days < 1 || days > MAX_REPORT_DAYS) {
      sendText(
        res,
        400,
        `days=${JSON.stringify(raw).slice(0, 40)} is not a whole number of days from 1 to ${MAX_REPORT_DAYS}`,
      );
      return true;
    }
    const now = (sources.now ?? Date.now)();
    const key = `${app}:${days}`;
    let hit = cache.get(key);
    if (!hit || now - hit.at > CACHE_MS) {
      const objective = sources.objectives?.()[app];
      const report = await gatherDrillReport({
        redis: sources.redis,
        prefix: sources.prefix,
        subject: app,
        apps: { [app]: { rpoObjectiveMs: (objective ?? 60) * 1000 } },
        days,
        now,
      });
      hit = { at: now, png: (await renderDrillReport(report)).png };
      cache.set(key, hit);
    }
    res.writeHead(200, {
      'content-type': 'image/png',
      'cache-control': 'private, max-age=60',
      'x-content-type-options': 'nosniff',
    });
    res.end(hit.png);
    return true;
  };
}
