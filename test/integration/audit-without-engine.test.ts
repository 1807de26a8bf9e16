// Job outcomes reach the hash-chained audit log while the engine is down: the worker writes them.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { AuditEntry } from '../../engine/audit-log.js';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import { dr, freePort, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import {
  killVolumeServers,
  recoveryClient,
  recoveryEnv,
  servedAppArgs,
  until,
} from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();

describe('audit log without the engine', () => {
  let t: TestHome;
  let redis: TestRedis;
  let conn: Redis;
  let client: RecoveryClient;
  let env: NodeJS.ProcessEnv;
  let prefix: string;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    await t.startGateway();
    ({ env, prefix } = recoveryEnv(t.home, redis.url));
    ({ conn, client } = recoveryClient(redis.url, prefix));
  });

  afterEach(async () => {
    await stopAll();
    await client?.close();
    conn?.disconnect();
    await killVolumeServers(t?.dir);
    await redis?.stop();
    await t?.cleanup();
  });

  async function audit(): Promise<AuditEntry[]> {
    const raw = await conn.xrange(`${prefix}audit`, '-', '+');
    return raw.map(([, f]) => JSON.parse(f[f.indexOf('entry') + 1] ?? '{}') as AuditEntry);
  }
  const ofOp = (entries: AuditEntry[], opId: string, type: string) =>
    entries.filter((e) => e.type === type && (e.data as { opId?: string }).opId === opId);

  async function eventIds(opId: string, type: string): Promise<string[]> {
    const all = await conn.xrange(client.keys.events, '-', '+');
    return all
      .filter(([, f]) => {
        const e = parseEvent(f);
        return e?.opId === opId && e.job === 'drill' && e.type === type;
      })
      .map(([id]) => id);
  }

  /**
   * Whether a consumer group has read the stream up to `id`. (Not whether all is acknowledged:
   * what the killed engine read and never acknowledged waits a minute for another consumer.)
   */
  async function groupCaughtUp(group: string, id: string): Promise<boolean> {
    const groups = (await conn.xinfo('GROUPS', client.keys.events)) as unknown[][];
    for (const g of groups) {
      const m = new Map<string, unknown>();
      for (let i = 0; i + 1 < g.length; i += 2) m.set(String(g[i]), g[i + 1]);
      if (m.get('name') !== group) continue;
      const last = String(m.get('last-delivered-id'));
      const [a, b] = last.split('-').map(Number);
      const [c, d] = id.split('-').map(Number);
      const past = (a ?? 0) > (c ?? 0) || (a === c && (b ?? 0) >= (d ?? 0));
      return past;
    }
    return false;
  }

  it('records a drill that finished after the engine was killed, once, in a chain that verifies', {
    timeout: 180_000,
  }, async () => {
    const image = join(t.dir, 'web.img');
    const data = Buffer.alloc(256 * 1024);
    data.write(`lifeboat-marker-${randomBytes(4).toString('hex')}\n`);
    await writeFile(image, data);
    const port = await freePort();
    // The recovered server answers its health check only after 3 s: the drill is still running
    // when the engine dies.
    const added = await dr(
      ['--home', t.home, ...servedAppArgs({ name: 'web', image, port, dir: t.dir, delayMs: 3000 })],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(added.err).toBe('');
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], env)).code).toBe(0);

    const serveEnv = { ...env, DR_LOG_LEVEL: 'info', SLACK_BOT_TOKEN: '', DINGTALK_CLIENT_ID: '' };
    const serve = startDr(['serve', '--listen', `127.0.0.1:${await freePort()}`], serveEnv);
    await serve.waitFor(/DingTalk: off/, 30_000);
    const worker: DrProcess = startDr(['worker', '--lock-duration', '5s'], env);
    await worker.waitFor(/worker ready/);

    const queued = await dr(['drill', 'web', '--json'], env);
    expect(queued.err).toBe('');
    const { opId } = JSON.parse(queued.out) as { opId: string };
    await until('the drill to start', async () =>
      (await eventIds(opId, 'started')).length > 0 ? true : undefined,
    );
    await serve.kill9();

    const [finished] = await until('the drill to finish', async () => {
      const ids = await eventIds(opId, 'finished');
      return ids.length > 0 ? ids : undefined;
    });
    const results = await until('the result in the audit log', async () => {
      const r = ofOp(await audit(), opId, 'result');
      return r.length > 0 ? r : undefined;
    });
    expect(results).toHaveLength(1);
    expect(results[0]?.data).toMatchObject({ opId, app: 'web', job: 'drill', ok: true });
    const verified = await dr(['audit', 'verify', '--json'], env);
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.out)).toMatchObject({ ok: true, problems: [] });

    // The engine comes back and reads the events it missed: the result stays recorded once.
    const again = startDr(['serve', '--listen', `127.0.0.1:${await freePort()}`], serveEnv);
    await again.waitFor(/DingTalk: off/, 30_000);
    await until('the engine to read the events it missed', async () =>
      (await groupCaughtUp('lifeboat-engine', finished as string)) ? true : undefined,
    );
    await until('the audit group to read the events', async () =>
      (await groupCaughtUp('lifeboat-audit', finished as string)) ? true : undefined,
    );
    const entries = await audit();
    expect(ofOp(entries, opId, 'result')).toHaveLength(1);
    // Its start may wait with the killed engine's consumer for a while, but is never written twice.
    expect(
      ofOp(entries, opId, 'job').filter((e) => (e.data as { state?: string }).state === 'started')
        .length,
    ).toBeLessThanOrEqual(1);
    // Each stops by itself (within its DR_STOP_TIMEOUT): exit 0, not the helper's SIGKILL.
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    const final = await dr(['audit', 'verify', '--json'], env);
    expect(JSON.parse(final.out)).toMatchObject({ ok: true, problems: [] });
  });
});
