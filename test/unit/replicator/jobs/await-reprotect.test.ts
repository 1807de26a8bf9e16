// What reprotect says at the end of a failback: "protected again, RPO N s", or why not and what to do.
import { describe, expect, it } from 'vitest';
import { awaitReprotect } from '../../../../replicator/jobs/await-reprotect.js';
import type { GatewayClient } from '../../../../replicator/transport/gateway-client.js';
import type { PointInfo } from '../../../../replicator/transport/wire-types.js';

/** A gateway that lists these points (or fails with this error): awaitReprotect asks nothing else. */
const gateway = (points: Partial<PointInfo>[] | Error) =>
  ({
    points: async () => {
      if (points instanceof Error) throw points;
      return points as PointInfo[];
    },
  }) as unknown as GatewayClient;

const NOW = Date.parse('2026-12-07T05:00:10Z');

describe('awaitReprotect', () => {
  it('says "protected again, RPO N s" with the first point after the switch', async () => {
    const out = await awaitReprotect({
      client: gateway([
        { id: 41, time: '2026-12-07T04:59:00Z', volumes: {} },
        {
          id: 42,
          time: '2026-12-07T05:00:07Z',
          volumes: { data: { blocksChanged: 3 } } as unknown as PointInfo['volumes'],
        },
      ]),
      app: 'web',
      after: 41,
      waitMs: 0,
      blocksWritten: 5,
      now: () => NOW,
    });
    expect(out).toEqual({
      protected: true,
      point: 42,
      rpoSeconds: 3,
      blocksResent: 3,
      detail: 'protected again, RPO 3 s (point 42: the agent resent 3 block(s), failback wrote 5)',
    });
  });

  it('says why not, and how to start the agent, when no point came in time', async () => {
    const out = await awaitReprotect({
      client: gateway([{ id: 41, time: '2026-12-07T04:59:00Z', volumes: {} }]),
      app: 'web',
      after: 41,
      waitMs: 0,
      blocksWritten: 5,
      now: () => NOW,
    });
    expect(out.protected).toBe(false);
    expect(out.detail).toBe(
      'not protected yet: no recovery point of web within 0ms of the switch back; start its agent (`dr agent --app web`, or restart `dr up` / the lifeboat-agent@web service): it resends only what failback wrote',
    );
  });

  it("names the gateway's answer when it could not be asked", async () => {
    const out = await awaitReprotect({
      client: gateway(new Error('connect ECONNREFUSED 127.0.0.1:7443')),
      app: 'web',
      after: 41,
      waitMs: 0,
      blocksWritten: 0,
      now: () => NOW,
    });
    expect(out.protected).toBe(false);
    expect(out.detail).toContain('(the gateway answered: connect ECONNREFUSED 127.0.0.1:7443)');
  });
});
