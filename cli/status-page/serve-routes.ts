import type { Redis } from 'ioredis';
import type { LoadedConfig } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import type { ControlPlane } from '../../engine/contract.js';
import { gatewayClient } from '../connect.js';
import { createControlMetrics } from '../metrics/control-metrics.js';
import { metricsRoute } from '../metrics/metrics-route.js';
import type { AccessRule } from '../web/access-rule.js';
import type { Route } from '../web/route.js';
import { pageActions } from './page-actions.js';
import { loadSigninKey } from './signin-key.js';
import { statusRoutes } from './status-routes.js';

export interface ServeRoutesOptions {
  config: LoadedConfig;
  /** A connection of the serving process; these routes only read. */
  redis: Redis;
  prefix: string;
  access: AccessRule;
  /** Ask the gateway for recovery points (needs the home's agent certificate); on by default. */
  gatewayPoints?: boolean;
  /**
   * The engine and the home: with both, the page has its buttons (drill, approve, reject) for
   * people signed in with a `dr signin` link; without, it only reads.
   */
  plane?: ControlPlane;
  home?: string;
  log?: Logger;
}

/**
 * What `dr serve` (and `dr up`) mount beside the chat surfaces: the status page, its JSON and
 * `/metrics` for the control plane. `close` releases the gateway connection.
 */
export async function createServeRoutes({
  config,
  redis,
  prefix,
  access,
  gatewayPoints = true,
  plane,
  home,
  log,
}: ServeRoutesOptions): Promise<{ routes: Route[]; close: () => void }> {
  const client = gatewayPoints ? gatewayClient(config, 3000) : undefined;
  const control = await createControlMetrics({ redis, prefix });
  const objectives = () =>
    Object.fromEntries(Object.entries(config.apps).map(([app, a]) => [app, a.rpoObjective / 1000]));
  const actions =
    plane && home
      ? pageActions({
          key: await loadSigninKey(home),
          plane,
          config: () => config,
          access,
          ...(log ? { log } : {}),
        })
      : undefined;
  return {
    routes: [
      ...statusRoutes({
        redis,
        prefix,
        access,
        configuredApps: () => Object.keys(config.apps),
        objectives,
        ...(actions ? { actions } : {}),
        ...(client ? { points: (app: string) => client.points(app) } : {}),
      }),
      metricsRoute(control.registry, access, control.refresh),
    ],
    close: () => client?.close(),
  };
}
