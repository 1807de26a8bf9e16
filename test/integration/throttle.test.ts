// `throttle APP RATE` from chat: through the policies, audited, kept by the gateway, applied by the agent.
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { parse } from '../../bot/grammar.js';
import { readConfig } from '../../core/config.js';
import type { AuditEntry } from '../../engine/audit-log.js';
import type { Command, Notice } from '../../engine/contract.js';
import { createEngine, type Engine } from '../../engine/create-engine.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { testPrefix } from '../helpers/engine-home.js';
import { dr, type TestHome, testHome, updateConfig, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

let n = 0;
/** A command as the Slack surface would send it, parsed by the real grammar. */
function said(actor: string, text: string): Command {
  const p = parse(text);
  if (!p.ok) throw new Error(p.error);
  return {
    id: `throttle-${process.pid}-${++n}`,
    actor,
    surface: 'slack',
    channel: 'slack:CASK',
    verb: p.verb,
    ...(p.app ? { app: p.app } : {}),
    args: p.args,
    at: new Date().toISOString(),
  };
}

describe('throttle from chat', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;
  let engine: Engine | undefined;
  beforeEach(async () => {
    t = await testHome();
  });
  afterEach(async () => {
    await engine?.close();
    engine = undefined;
    await stopAll();
    await redis?.stop();
    redis = undefined;
    await t.cleanup();
  });

  it('caps a running agent for those allowed, audits it, and lifts it again', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const image = join(t.dir, 'a.img');
    await writeImage(image, 2 * 1024 * 1024, 5);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${image}`]);
    await updateConfig(t.home, (doc) => {
      doc.setIn(['people', 'sam'], { ids: ['slack:USAM'], groups: ['sre-oncall'] });
      doc.setIn(['people', 'dan'], { ids: ['slack:UDAN'], groups: ['devs'] });
    });
    const gateway = startDr(['gateway'], { DR_HOME: t.home });
    await gateway.waitFor(/gateway listening/);
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '1s'], {
      DR_HOME: t.home,
    });
    await agent.waitFor(/recovery point committed/);
    const prefix = testPrefix();
    engine = await createEngine({
      home: t.home,
      config: await readConfig(t.home, {}),
      redisUrl: redis.url,
      prefix,
      watchPolicies: false,
    });
    const status = async (): Promise<AppStatus | undefined> => {
      const r = await dr(['--home', t.home, 'status', 'web', '--json']);
      return r.code === 0 ? (JSON.parse(r.out) as AppStatus) : undefined;
    };

    // A developer is not on call: denied by the policies, before the gateway hears of it.
    const dev = await engine.submit(said('slack:UDAN', 'throttle web 1MiB/s'));
    expect(dev.ok).toBe(false);
    expect(dev.decision?.outcome).toBe('deny');
    // A bad rate is refused in one line naming it, before the policies.
    const bad = await engine.submit(said('slack:USAM', 'throttle web fast'));
    expect(bad.ok).toBe(false);
    expect(bad.summary).toBe('throttle web fast: fast is not a rate');
    const zero = await engine.submit(said('slack:USAM', 'throttle web 0'));
    expect(zero.summary).toBe('throttle web 0: 0 is not a cap above zero');
    const window = await engine.submit(said('slack:USAM', 'throttle web 1MiB/s 09:00-9'));
    expect(window.summary).toMatch(/09:00-9 is not a time window like 08:00-18:00/);

    const set = await engine.submit(said('slack:USAM', 'throttle web 64KiB/s'));
    expect(set.ok, set.summary).toBe(true);
    expect(set.summary).toMatch(/^sam capped replication of web at 64\.0 KiB\/s/);
    await waitFor(
      'the agent to apply the cap set from chat',
      async () => {
        const s = await status();
        return s?.link?.capFrom === 'chat' && s.link.capBytesPerSec === 64 * 1024;
      },
      30_000,
    );
    await agent.waitFor(/bandwidth cap set from chat/);

    const lifted = await engine.submit(said('slack:USAM', 'throttle web default'));
    expect(lifted.ok, lifted.summary).toBe(true);
    await waitFor(
      'the agent to drop the cap from chat',
      async () => {
        const s = await status();
        return s?.link !== undefined && s.link.capBytesPerSec === undefined && !s.link.capFrom;
      },
      30_000,
    );

    const conn = new Redis(redis.url);
    try {
      const audit = (await conn.xrange(`${prefix}audit`, '-', '+')).map(
        ([, f]) => JSON.parse(f[f.indexOf('entry') + 1] ?? '{}') as AuditEntry,
      );
      const results = audit
        .filter((a) => a.type === 'result')
        .map((a) => a.data as { verb: string; maxRate: string | null; ok: boolean });
      expect(results.map((r) => [r.verb, r.ok, r.maxRate])).toEqual([
        ['throttle', true, '64KiB/s'],
        ['throttle', true, null],
      ]);
      const notices = (await conn.xrange(`${prefix}notices`, '-', '+')).map(
        ([, f]) => JSON.parse(f[f.indexOf('notice') + 1] ?? '{}') as Notice,
      );
      expect(notices.filter((x) => x.kind === 'replication.throttled')).toHaveLength(2);
    } finally {
      conn.disconnect();
    }
    expect(await agent.stop()).toBe(0);
    await gateway.stop();
  }, 120_000);
});
