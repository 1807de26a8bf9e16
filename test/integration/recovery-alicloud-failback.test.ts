import { randomBytes } from 'node:crypto';
import { cp, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import type {
  FailbackResult,
  OperationEvent,
  OperationResult,
} from '../../replicator/jobs/recovery-contract.js';
import { type EcsEmulator, startEcsEmulator } from '../fakes/ecs-emulator.js';
import { emulatedSite } from '../helpers/ecs-site.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { recoveryClient, recoveryEnv, until } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();
const drBin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const SIZE = 256 * 1024;
/** Where the test's fence, run on the ECS guest, writes its marker: the last write before the cut. */
const MARK_AT = 200_000;
const MARK = 'written on ECS just before the fence';

describe('failback home from ECS through reverse replication (the way home)', () => {
  let t: TestHome;
  let redis: TestRedis;
  let emu: EcsEmulator;
  let env: NodeJS.ProcessEnv;
  let prefix: string;
  let keyId: string;
  let secret: string;
  let guestHome: string;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    await t.startGateway();
    keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
    secret = randomBytes(22).toString('base64url');
    emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: t.dir });
    ({ env, prefix } = recoveryEnv(t.home, redis.url));
  });

  afterEach(async () => {
    // A way-home agent the failback did not stop (a failed test): it runs in its own session.
    const pid = await readFile(join(guestHome ?? '/nonexistent', 'way-home-web.pid'), 'utf8').catch(
      () => '', // none left: the final cut stopped it
    );
    if (Number(pid) > 0) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // it ended by itself meanwhile
      }
    }
    await stopAll();
    await emu?.close();
    await redis?.stop();
    await t?.cleanup();
  });

  /** `lockDuration`: short, so a killed worker's job is taken over soon (the resume test). */
  async function worker(lockDuration?: string) {
    const w = startDr(['worker', ...(lockDuration ? ['--lock-duration', lockDuration] : [])], {
      ...env,
      DR_LOG_LEVEL: 'debug',
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret,
    });
    await w.waitFor(/worker ready/);
    return w;
  }

  /**
   * App `web` protected, failed over into the emulated region, written to on ECS; the source's
   * agent running (standing by). The fence writes a marker on the ECS guest only.
   */
  async function failedOverApp() {
    const image = join(t.dir, 'web.img');
    const data = Buffer.alloc(SIZE);
    randomBytes(64 * 1024).copy(data, 64 * 1024);
    await writeFile(image, data);
    // The fence stops the app's writes; on the ECS guest (its volume under by-id) this one also
    // writes a marker first, the last thing the app wrote there.
    const fence = `case "$DR_VOLUME_DATA" in *by-id*) printf '${MARK}' | dd of="$DR_VOLUME_DATA" bs=1 seek=${MARK_AT} conv=notrunc 2>/dev/null;; esac`;
    const added = await dr(
      [
        '--home',
        t.home,
        'app',
        'add',
        'web',
        '--volume',
        `data=${image}`,
        '--quiesce-freeze',
        'true',
        '--quiesce-thaw',
        'true',
        '--fence',
        fence,
      ],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(added.err).toBe('');
    // The source's DR_HOME travels on its disks to the recovered instance: the agent there
    // finds its keys and certificates in it (here: a copy, as the guest runs on this machine).
    guestHome = join(t.dir, 'guest-home');
    await cp(t.home, guestHome, { recursive: true });
    await updateConfig(t.home, (doc) => {
      doc.setIn(
        ['apps', 'web', 'provider'],
        doc.createNode({
          kind: 'alicloud',
          ...emulatedSite(emu),
          bootCheck: 'warn',
          checkTimeout: '20s',
          agentHome: guestHome,
          agentCommand: `${process.execPath} ${drBin}`,
          // The emulator settles in a tenth of a second: polling it every 2 s (up to 16 s) was
          // most of this file's time.
          pollInterval: '200ms',
        }),
      );
    });
    expect(await dr(['agent', '--app', 'web', '--once'], env)).toMatchObject({ code: 0 });
    const w = await worker();

    const fo = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(fo.code).toBe(0);
    const failover = JSON.parse(fo.out) as OperationResult;
    const sys = [...emu.state.disks.values()].find(
      (d) => d.instanceId === failover.server.id && d.type === 'system',
    );
    expect(sys).toBeDefined();
    // The app runs on ECS now and writes there.
    const onEcs = randomBytes(64 * 1024);
    const fh = await open(sys?.file ?? '', 'r+');
    await fh.write(onEcs, 0, onEcs.length, 0);
    await fh.close();
    // The source's agent stands by through the failover and resumes after the failback.
    const agent = startDr(['agent', '--app', 'web', '--interval', '200ms'], env);
    // The original holds what the app wrote on ECS, up to the fence's last write.
    const expected = Buffer.from(data);
    onEcs.copy(expected, 0);
    expected.write(MARK, MARK_AT);
    return { image, w, agent, failover, expected };
  }

  it('replicates the ECS instance home, fences it, writes the last cut to the original and protects it again', async () => {
    const { image, w, agent, failover, expected } = await failedOverApp();
    const fb = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(fb.err).toBe('');
    expect(fb.code).toBe(0);
    const result = JSON.parse(fb.out) as FailbackResult;
    expect(result.failoverOpId).toBe(failover.opId);
    expect(result.wayHome?.app).toBe('web--home');
    expect(result.wayHome?.lastPoint).toBeGreaterThanOrEqual(result.wayHome?.firstPoint ?? 0);

    const original = await readFile(image);
    expect(original.length).toBe(SIZE);
    expect(original.equals(expected)).toBe(true);

    // The instance was started on through Cloud Assistant, stopped as the fence, then removed.
    const actions = emu.state.requests.map((q) => q.action);
    expect(actions).toContain('RunCommand');
    expect(actions).toContain('DescribeInvocationResults');
    const stopAt = actions.lastIndexOf('StopInstance');
    expect(stopAt).toBeGreaterThan(actions.lastIndexOf('RunCommand'));
    expect(emu.state.instances.has(failover.server.id)).toBe(false);

    // Forward protection again: the agent that stood by committed a point from the originals.
    expect(result.protection.protected).toBe(true);
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).not.toBe('paused');
    await agent.stop();
    expect(w.output()).not.toContain(secret);
  }, 240_000);
  it('resumes on another worker after a kill once the way home started, starting no second agent', async () => {
    const { image, w, agent, expected } = await failedOverApp();
    const { conn, client } = recoveryClient(redis.url, prefix);
    try {
      const enq = await dr(['failback', 'web', '--json'], env);
      const opId = (JSON.parse(enq.out) as { opId: string }).opId;
      const stepped = async (step: string) =>
        (await conn.xrange(client.keys.events, '-', '+'))
          .map(([, f]) => parseEvent(f))
          .some((e) => e?.opId === opId && e.step === step);
      await until(
        'the way home started',
        async () => ((await stepped('way-home-started')) ? true : undefined),
        120_000,
      );
      await w.kill9();
      await worker('2s');
      let end: OperationEvent | undefined;
      for await (const e of client.follow({ opId, job: 'failback', app: 'web', after: '0-0' })) {
        if (e.type === 'finished') end = e;
      }
      expect(end?.error).toBeUndefined();
      const result = end?.result as FailbackResult;
      expect(result.resumes).toBeGreaterThanOrEqual(1);
      const starts = [...emu.state.invocations.values()].filter(
        (i) => i.name === 'lifeboat-way-home-web',
      );
      expect(starts).toHaveLength(1);
      expect((await readFile(image)).equals(expected)).toBe(true);
      expect(result.protection.protected).toBe(true);
      await agent.stop();
    } finally {
      await client.close();
      conn.disconnect();
    }
  }, 300_000);

  it('stops with the agent’s own words when the instance cannot reach the gateway; the app stays on ECS', async () => {
    const { failover, agent } = await failedOverApp();
    // The instance's DR_HOME names a gateway it cannot reach (a port nobody listens on).
    const closed = `127.0.0.1:${await freePort()}`;
    await updateConfig(guestHome, (doc) => doc.setIn(['gateway', 'address'], closed));
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'wayHomeConnectWait'], '5s'));
    const fb = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(fb.code).toBe(1);
    const body = JSON.parse(fb.out) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('way_home_failed');
    expect(body.error.message).toContain(
      `the agent on ${failover.server.id} has not reached the gateway as web--home in 5 s; its log ends: `,
    );
    expect(body.error.message).toContain('To resolve, let the instance reach the gateway');
    expect(emu.state.instances.get(failover.server.id)?.status).toBe('Running');
    expect((await dr(['status', 'web', '--json'], env)).out).toContain('failed-over');
    await agent.stop();
  }, 240_000);
});
