import type { Redis } from 'ioredis';
import type { LoadedConfig } from '../../core/config.js';
import { gatewayClient } from '../connect.js';
import { createControlMetrics } from '../metrics/control-metrics.js';
import { metricsRoute } from '../metrics/metrics-route.js';
import type { AccessRule } from '../web/access-rule.js';
import type { Route } from '../web/route.js';
import { statusRoutes } from './status-routes.js';

export interface ServeRoutesOptions {
  config: LoadedConfig;
  /** A connection of the serving process; these routes only read. */
  redis: Redis;
  prefix: string;
  access: AccessRule;
  /** Ask the gateway for recovery points (needs the home's agent certificate); on by default. */
  gatewayPoints?: boolean;
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
}: ServeRoutesOptions): Promise<{ routes: Route[]; close: () => void }> {
  const client = gatewayPoints ? gatewayClient(config, 3000) : undefined;
  const control = await createControlMetrics({ redis, prefix });
  const objectives = () =>
    Object.fromEntries(Object.entries(config.apps).map(([app, a]) => [app, a.rpoObjective / 1000]));
  return {
    routes: [
      ...statusRoutes({
        redis,
        prefix,
        access,
        configuredApps: () => Object.keys(config.apps),
        objectives,
        ...(client ? { points: (app: string) => client.points(app) } : {}),
      }),
      metricsRoute(control.registry, access, control.refresh),
    ],
    close: () => client?.close(),
  };
}
