// Two `dr gateway` processes (gateway.shared) on one Ceph bucket with their leases in a real Redis, three agents: every app served by at most one gateway at every check, kill -9 of one gateway, its apps taken over by the other, the agents carrying on, and every recorded point restoring byte-exact through the survivor.
import { randomBytes } from 'node:crypto';
import { cp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../core/home.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { tlsClientOptions } from '../../replicator/transport/tls-options.js';
import { cephUnavailable, type TestCeph, useCephAndRedis } from '../helpers/ceph-s3.js';
import {
  dr,
  freePort,
  scribble,
  testHome,
  updateConfig,
  writeImage,
} from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const BUCKET = 'lifeboat-takeover';
const APPS = ['web', 'db', 'shop'] as const;

describe.skipIf(
  missingFeature(cephUnavailable() ?? redisUnavailable(), 'shared gateways on Ceph and Redis'),
)('two shared gateways, one killed', () => {
  const servers = useCephAndRedis(BUCKET);
  let ceph: TestCeph;
  let redis: TestRedis;

  beforeAll(() => {
    ({ ceph, redis } = servers());
  });

  afterAll(async () => {
    await stopAll();
  }, 120_000);

  it('keeps one holder per app, takes a killed gateway’s apps over, and restores every point byte-exact', async () => {
    const t = await testHome();
    const prefix = `run-${randomBytes(4).toString('hex')}`;
    const [g1, g2] = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const clients: GatewayClient[] = [];
    /** Every process started, whose output a failure prints. */
    const processes: DrProcess[] = [];
    let checking = true;
    let checker: Promise<void> | undefined;
    try {
      // One home per gateway machine (a copy: same certificates and keys), each listing both.
      const home1 = t.home;
      await updateConfig(home1, (doc) => {
        doc.setIn(['gateway', 'store'], `s3://${BUCKET}/${prefix}`);
        doc.setIn(['gateway', 'shared'], true);
        doc.setIn(['gateway', 'listen'], g1);
        doc.setIn(['gateway', 'address'], [g1, g2]);
      });
      const images = new Map<string, string>();
      for (const [i, app] of APPS.entries()) {
        const img = join(t.dir, `${app}.img`);
        await writeImage(img, 1024 * 1024 + 4096 * i, 11 + i);
        images.set(app, img);
        const add = await dr(['--home', home1, 'app', 'add', app, '--volume', `a=${img}`]);
        expect(add.code, add.err).toBe(0);
      }
      const home2 = join(t.dir, 'home2');
      await cp(home1, home2, { recursive: true });
      await updateConfig(home2, (doc) => {
        doc.setIn(['gateway', 'listen'], g2);
        doc.setIn(['gateway', 'address'], [g2, g1]);
      });
      const env = { ...ceph.env, REDIS_URL: redis.url };
      const gateway1 = startDr(['gateway'], { ...env, DR_HOME: home1 });
      const gateway2 = startDr(['gateway'], { ...env, DR_HOME: home2 });
      await gateway1.waitFor(/gateway listening .*shared/, 120_000);
      processes.push(gateway1, gateway2);
      await gateway2.waitFor(/gateway listening .*shared/, 120_000);

      // Each gateway asked on its own: which apps it serves, every 200 ms from now to the end.
      const one = (home: string, address: string) => {
        const c = new GatewayClient({
          address,
          tls: tlsClientOptions(homePaths(home), '127.0.0.1'),
          timeoutMs: 10_000,
        });
        clients.push(c);
        return c;
      };
      const asked = [one(home1, g1), one(home2, g2)];
      const violations: string[] = [];
      let rounds = 0;
      const servedBy = async () => {
        const lists = await Promise.all(asked.map((c) => c.status().catch(() => [])));
        return new Map(
          APPS.map((app) => [
            app,
            lists.flatMap((l, i) => (l.find((s) => s.app === app)?.served ? [i + 1] : [])),
          ]),
        );
      };
      checker = (async () => {
        while (checking) {
          for (const [app, by] of await servedBy())
            if (by.length > 1) violations.push(`${app} served by gateways ${by.join(' and ')}`);
          rounds++;
          await sleep(200);
        }
      })();

      // web and db go to gateway 1 first (home1 lists it first), shop to gateway 2.
      const agents: DrProcess[] = APPS.map((app) =>
        startDr(['agent', '--app', app], { DR_HOME: app === 'shop' ? home2 : home1 }),
      );
      processes.push(...agents);
      const recorded: Array<{ app: string; point: number; image: Buffer }> = [];
      /** Waits until the app's latest point restores to the image as it is now; records it. */
      const settle = async (app: string) => {
        const img = images.get(app) as string;
        const out = join(t.dir, `${app}-latest.img`);
        const image = await readFile(img);
        const point = await waitFor(
          `${app}'s latest point to hold its image`,
          async () => {
            await rm(out, { force: true }); // a restore never overwrites: the last try's file goes first
            const r = await dr(
              [
                ...['--home', home1, 'restore', app, '--point', 'latest', '--allow-fuzzy'],
                ...['--volume', 'a', '--to', out],
              ],
              quiet,
            );
            if (r.code !== 0 || !(await readFile(out)).equals(image)) return false;
            await rm(out, { force: true });
            const points = await dr(['--home', home1, 'points', app, '--json'], quiet);
            return (JSON.parse(points.out) as Array<{ id: number }>).at(-1)?.id;
          },
          180_000,
        );
        await rm(out, { force: true });
        recorded.push({ app, point, image });
      };
      for (const app of APPS) await settle(app);
      const before = await servedBy();
      expect(before.get('web')).toEqual([1]);
      expect(before.get('db')).toEqual([1]);
      expect(before.get('shop')).toEqual([2]);

      // Gateway 1 dies: web and db move to gateway 2; their agents carry on without a restart.
      await gateway1.kill9();
      for (const app of APPS) await scribble(images.get(app) as string, 12);
      for (const app of APPS) await settle(app);
      await waitFor(
        'gateway 2 to serve every app',
        async () => [...(await servedBy()).values()].every((by) => by.join() === '2'),
        120_000,
      );
      for (const a of agents) expect(a.child.exitCode).toBeNull();
      expect(gateway2.output()).toMatch(/took the app lease/);

      // Every recorded point, before and after the kill, restores byte-exact (gateway 1 is gone).
      for (const { app, point, image } of recorded) {
        const out = join(t.dir, `${app}-${point}.img`);
        const r = await dr(
          ['--home', home1, 'restore', app, '--point', String(point), '--volume', 'a', '--to', out],
          quiet,
        );
        expect(r.code, r.err).toBe(0);
        expect((await readFile(out)).equals(image), `${app} point ${point}`).toBe(true);
      }
      checking = false;
      await checker;
      expect(violations).toEqual([]);
      expect(rounds).toBeGreaterThan(10);
      for (const a of agents) await a.stop();
      await gateway2.stop();
    } catch (err) {
      for (const p of processes)
        process.stderr.write(
          `--- dr ${p.child.spawnargs.slice(2).join(' ')}:\n${p.output().slice(-4000)}\n`,
        );
      throw err;
    } finally {
      checking = false;
      await checker;
      for (const c of clients) c.close();
      await stopAll();
      await t.cleanup();
    }
  }, 600_000);
});
