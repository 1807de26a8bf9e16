import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoticeReader, publishNotice } from '../../../bot/notice-reader.js';
import { controlKeys, type Notice } from '../../../engine/contract.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

const notice = (n: number, targets = ['slack:C1']): Omit<Notice, 'id'> => ({
  kind: 'operation.step',
  key: `op:op-${n}`,
  targets,
  severity: 'info',
  summary: `step ${n}`,
  time: n,
});

describe.skipIf(missingFeature(redisUnavailable(), 'notice-reader.test.ts'))(
  'NoticeReader (consumer group per surface, real Redis)',
  () => {
    let redis: TestRedis;
    const conns: Redis[] = [];
    const conn = () => {
      const c = new Redis(redis.url);
      conns.push(c);
      return c;
    };

    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => {
      for (const c of conns) c.disconnect();
      await redis?.stop();
    });

    it('shares the notices between two processes of one surface: each handled once', async () => {
      const prefix = 'share:';
      const seen: [string, string][] = [];
      const readers = ['a', 'b'].map(
        (name) =>
          new NoticeReader({
            redis: conn(),
            prefix,
            group: 'bot:slack',
            consumer: name,
            accepts: (n) => n.targets.some((t) => t.startsWith('slack:')),
            handle: async (n) => {
              seen.push([name, n.summary]);
              await new Promise((r) => setTimeout(r, 2));
            },
          }),
      );
      for (const r of readers) await r.start();
      const w = conn();
      for (let i = 0; i < 40; i++)
        await publishNotice(w, notice(i, i % 10 === 0 ? ['dingtalk:cid'] : ['slack:C1']), prefix);
      await w.xadd(controlKeys(prefix).notices, '*', 'notice', 'not json');
      await waitFor('36 notices', () => seen.length === 36);
      await new Promise((r) => setTimeout(r, 300));
      for (const r of readers) await r.close();
      expect(new Set(seen.map(([, s]) => s)).size).toBe(36);
      expect(seen).toHaveLength(36);
      const pending = (await w.xpending(controlKeys(prefix).notices, 'bot:slack')) as [
        number,
        ...unknown[],
      ];
      expect(pending[0]).toBe(0);
    });

    it('retries a notice whose handling failed, and takes over one a dead consumer held', async () => {
      const prefix = 'retry:';
      const w = conn();
      let failures = 0;
      const handled: string[] = [];
      const flaky = new NoticeReader({
        redis: conn(),
        prefix,
        group: 'bot:slack',
        consumer: 'flaky',
        accepts: () => true,
        claimAfterMs: 200,
        handle: async (n) => {
          if (failures++ < 2) throw new Error('Slack is down');
          handled.push(n.summary);
        },
      });
      await flaky.start();
      await publishNotice(w, notice(1), prefix);
      await waitFor('the notice after two failures', () => handled.includes('step 1'), 20_000);
      await flaky.close();

      // A consumer that read a notice and died before acknowledging it: another one takes it over.
      const key = controlKeys(prefix).notices;
      await publishNotice(w, notice(2), prefix);
      await w.xreadgroup('GROUP', 'bot:slack', 'dead', 'COUNT', 1, 'STREAMS', key, '>');
      const heir = new NoticeReader({
        redis: conn(),
        prefix,
        group: 'bot:slack',
        consumer: 'heir',
        accepts: () => true,
        claimAfterMs: 200,
        handle: async (n) => void handled.push(n.summary),
      });
      await heir.start();
      await waitFor('the orphaned notice', () => handled.includes('step 2'), 20_000);
      await heir.close();
    });
  },
);
