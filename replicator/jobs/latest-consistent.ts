/** The point an operation recovers when none is named: the latest one that is not fuzzy. */
import { DrError } from '../../core/errors.js';
import type { GatewayClient } from '../transport/gateway-client.js';

/** The latest point that is not fuzzy; a retry cannot make one appear. */
export async function latestConsistent(client: GatewayClient, app: string): Promise<number> {
  const points = await client.points(app);
  const p = points.findLast((x) => x.label !== 'fuzzy');
  if (p) return p.id;
  throw new DrError(
    points.length === 0
      ? `${app} has no recovery point yet`
      : `${app} has no consistent recovery point yet (its ${points.length} point(s) are fuzzy)`,
    {
      code: 'point_unknown',
      subject: app,
      remedy:
        points.length === 0
          ? `wait for its agent's first point (\`dr status\` shows it once committed); if no agent runs, start one with \`dr agent --app ${app}\``
          : 'give the app a freeze (--fsfreeze or --quiesce-freeze/--quiesce-thaw) so the agent commits consistent points, or name a point with --point',
    },
  );
}
