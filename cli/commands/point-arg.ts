import { DrError } from '../../core/errors.js';
import { checkName, isName } from '../../core/names.js';
import type { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { usageError } from '../context.js';

/** `--point` takes a point id or `latest`. */
export function pointArg(text: string): number | 'latest' {
  if (!isName('point', text)) {
    throw usageError(
      `--point ${JSON.stringify(text)} is not a point id`,
      'give an id from `dr points APP`, or latest',
    );
  }
  return checkName('point', text);
}

/**
 * `latest` means the latest consistent point (app- or crash-consistent):
 * restoring a fuzzy one must be asked for.
 */
export async function resolvePoint(
  client: GatewayClient,
  app: string,
  ref: number | 'latest',
  allowFuzzy: boolean,
): Promise<number | 'latest'> {
  if (ref !== 'latest' || allowFuzzy) return ref;
  const points = await client.points(app);
  const consistent = points.findLast((p) => p.label !== 'fuzzy');
  if (consistent) return consistent.id;
  if (points.length === 0) return 'latest'; // the gateway answers with its own "no point" error
  throw new DrError(
    `${app} has no consistent recovery point yet (its ${points.length} point(s) are fuzzy)`,
    {
      code: 'point_unknown',
      subject: app,
      remedy:
        'give the app a freeze (`dr app add … --fsfreeze MOUNT` or --quiesce-freeze/--quiesce-thaw) for consistent points, or pass --allow-fuzzy',
    },
  );
}
