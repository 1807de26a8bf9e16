/** Commit: the agent's signed record becomes a recovery point; retention and GC follow, one at a time per app. */
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { commitRequestSchema, type PointInfo } from '../transport/protocol.js';
import type { AgentLeases } from './agent-leases.js';
import type { GatewayStore } from './gateway-store.js';
import { heldApp } from './held-app.js';
import { badRequest, parseRequest } from './request-body.js';
import type { RetentionRules } from './retention.js';

export type PointCommit = (app: string, body: unknown) => Promise<PointInfo>;

export function createPointCommit({
  store,
  leases,
  retention,
  log,
  now,
}: {
  store: GatewayStore;
  leases: AgentLeases;
  retention: RetentionRules;
  log: Logger;
  now: () => number;
}): PointCommit {
  return async (app, body) => {
    const a = heldApp(store, app);
    const req = parseRequest(
      commitRequestSchema,
      body,
      "commit (a commit carries the agent's signed record of the point)",
      'upgrade the agent to match the gateway',
    );
    leases.holds(app, req.sessionId);
    const { record, sig } = req;
    if (record.app !== app)
      throw badRequest(
        `the signed record is for app ${record.app}, not ${app}`,
        'commit to the app the record names',
      );
    // Everything the point says comes from the record the agent signed (its time already on our clock).
    const point = await a.commitPoint({
      upToSeq: record.seqTo,
      label: record.label,
      time: new Date(record.time),
      volumes: record.volumes,
      signed: { record, sig },
    });
    const rt = leases.runtime(app);
    if (rt.lease) rt.lease.phase = 'continuous';
    // Retention and GC run after the answer, one at a time per app.
    rt.maintenance = rt.maintenance
      .then(async () => {
        const { removed } = await a.applyRetention(new Date(now()), retention);
        if (removed.length > 0) {
          const gc = await a.collectGarbage();
          log.info({ app, removed, ...gc }, 'retention applied');
        }
      })
      .catch((err) =>
        log.error(
          { app, err: errorMessage(err) },
          'retention failed; will retry after the next point',
        ),
      );
    log.info(
      { app, point: point.id, label: point.label, seqTo: point.seqTo },
      'recovery point committed',
    );
    return point;
  };
}
