/** Reprotect: after a failback, wait for the agent's first point from the written-back state. */
import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration } from '../../core/units.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointInfo } from '../transport/wire-types.js';
import type { ReprotectOutcome } from './recovery-contract.js';

/** The newest point's id now (0: none), taken just before the failed-over mark is lifted. */
export async function lastPointId(client: GatewayClient, app: string): Promise<number> {
  return (await client.points(app)).at(-1)?.id ?? 0;
}

/**
 * Asks the gateway every second, up to `waitMs`, for a point newer than `after`: the agent that
 * stood by through the failover has started again and committed what failback wrote (its scan
 * compares the originals with the MACs the gateway holds, so it resends only those blocks).
 * Never throws: a gateway that does not answer, or no point in time, is an outcome that says so.
 */
export async function awaitReprotect(o: {
  client: GatewayClient;
  app: string;
  after: number;
  waitMs: number;
  /** Blocks failback wrote to the originals, for the comparison with what the agent resent. */
  blocksWritten: number;
  signal?: AbortSignal;
  now?: () => number;
}): Promise<ReprotectOutcome> {
  const now = o.now ?? Date.now;
  const until = now() + o.waitMs;
  let lastError = '';
  for (;;) {
    let point: PointInfo | undefined;
    try {
      point = (await o.client.points(o.app)).find((p) => p.id > o.after);
      lastError = '';
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (point) {
      const rpoSeconds = Math.max(0, Math.round((now() - Date.parse(point.time)) / 1000));
      const blocksResent = Object.values(point.volumes).reduce((n, v) => n + v.blocksChanged, 0);
      return {
        protected: true,
        point: point.id,
        rpoSeconds,
        blocksResent,
        detail: `protected again, RPO ${rpoSeconds} s (point ${point.id}: the agent resent ${blocksResent} block(s), failback wrote ${o.blocksWritten})`,
      };
    }
    if (now() >= until || o.signal?.aborted) break;
    await sleep(1000, undefined, o.signal ? { signal: o.signal } : undefined).catch(
      () => undefined,
    ); // aborted: reported below
  }
  return {
    protected: false,
    detail: `not protected yet: no recovery point of ${o.app} within ${formatDuration(o.waitMs)} of the switch back${lastError ? ` (the gateway answered: ${lastError})` : ''}; start its agent (\`dr agent --app ${o.app}\`, or restart \`dr up\` / the lifeboat-agent@${o.app} service): it resends only what failback wrote`,
  };
}
