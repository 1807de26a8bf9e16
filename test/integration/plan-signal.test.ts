// A plan run's controls in Redis: a manual step is continued once, even after the run took the
// first press's control (which deletes it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planKeys } from '../../replicator/jobs/plan-contract.js';
import { recoveryClient } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

describe.skipIf(missingFeature(redisUnavailable(), 'plan-signal.test.ts'))(
  'plan controls in Redis',
  () => {
    let redis: TestRedis;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('takes the first Continue of a step for good; a second, after the run took the first, is refused and names who', async () => {
      const prefix = 'lbsig';
      const { conn, client } = recoveryClient(redis.url, prefix);
      try {
        const at = { group: 1, step: 0 };
        const press = (by: string) => ({ action: 'continue' as const, by, at, time: Date.now() });
        expect(await client.signalPlan('op-aaaaaaaaaaaa', press('tom'))).toBe(true);
        // The run takes the control (as run-plan does, with GETDEL).
        await conn.getdel(planKeys(`${prefix}:`).signal('op-aaaaaaaaaaaa'));
        expect(await client.pendingSignal('op-aaaaaaaaaaaa')).toBeUndefined();
        expect(await client.signalPlan('op-aaaaaaaaaaaa', press('sam'))).toBe(false);
        expect(await client.continuedBy('op-aaaaaaaaaaaa', at)).toBe('tom');
        // Another step, and a rollback at the same position, are not held by that claim.
        expect(
          await client.signalPlan('op-aaaaaaaaaaaa', {
            ...press('sam'),
            at: { group: 2, step: 0 },
          }),
        ).toBe(true);
        await conn.getdel(planKeys(`${prefix}:`).signal('op-aaaaaaaaaaaa'));
        expect(
          await client.signalPlan('op-aaaaaaaaaaaa', { ...press('sam'), action: 'rollback' }),
        ).toBe(true);
      } finally {
        conn.disconnect();
      }
    });
  },
);
