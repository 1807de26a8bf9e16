import { randomBytes } from 'node:crypto';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { type EcsEmulator, startEcsEmulator } from '../fakes/ecs-emulator.js';
import { emulatedSite } from '../helpers/ecs-site.js';
import { dr, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { recoveryClient, recoveryEnv } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { cpioNewc, gzip, makeSystemDisk, systemDiskToolsMissing } from '../helpers/system-disk.js';
import { waitFor } from '../helpers/wait-for.js';

const problem = redisUnavailable();
const KERNEL = '6.1.0-18-amd64';

describe('recovery jobs with the alicloud provider against the ECS emulator', () => {
  let t: TestHome;
  let redis: TestRedis;
  let emu: EcsEmulator;
  let env: NodeJS.ProcessEnv;
  let keyId: string;
  let secret: string;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    await t.startGateway();
    keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
    secret = randomBytes(22).toString('base64url');
    emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: t.dir });
    ({ env } = recoveryEnv(t.home, redis.url));
  });

  afterEach(async () => {
    await stopAll();
    await emu?.close();
    await redis?.stop();
    await t?.cleanup();
  });

  /**
   * App `web`: one volume, app-consistent points, recovered into the emulated ECS region. By
   * default the volume is random bytes (not bootable) and the boot check only warns.
   */
  async function protect(
    o: { image?: string; bootCheck?: 'enforce' | 'warn'; fence?: string } = {},
  ): Promise<void> {
    const image = o.image ?? join(t.dir, 'web.img');
    if (!o.image) {
      const data = Buffer.alloc(256 * 1024);
      randomBytes(64 * 1024).copy(data, 64 * 1024);
      await writeFile(image, data);
    }
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
        ...(o.fence ? ['--fence', o.fence] : []),
      ],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(added.err).toBe('');
    // Written by hand in real life (docs/recovery.md): no flags for the ECS settings.
    await updateConfig(t.home, (doc) => {
      doc.setIn(
        ['apps', 'web', 'provider'],
        doc.createNode({
          kind: 'alicloud',
          ...emulatedSite(emu),
          // The volume is random bytes, not a bootable disk: report problems, do not stop on them.
          bootCheck: o.bootCheck ?? 'warn',
          checkTimeout: '20s',
        }),
      );
    });
    const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(agent.code).toBe(0);
  }

  async function worker(keys: NodeJS.ProcessEnv) {
    const w = startDr(['worker', '--concurrency', '2'], { ...env, DR_LOG_LEVEL: 'debug', ...keys });
    await w.waitFor(/worker ready/);
    return w;
  }

  /** Ids of the emulated resources tagged with `opId` (the worker instance is never tagged). */
  function tagged(opId: string): string[] {
    const s = emu.state;
    return [
      ...s.instances.values(),
      ...s.disks.values(),
      ...s.snapshots.values(),
      ...s.images.values(),
    ]
      .filter((x) => x.tags.get('lifeboat-op') === opId)
      .map((x) => x.id);
  }

  it('drills into ECS: healthy Running instance, then `dr cleanup` removes everything tagged', async () => {
    await protect();
    const w = await worker({
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret,
    });
    const r = await dr(['drill', 'web', '--wait', '--json'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult & { ok: boolean };
    const points = await (await t.client()).points('web');
    expect(result.ok).toBe(true);
    expect(result.point).toBe(points.at(-1)?.id);
    expect(points.at(-1)?.label).toBe('app-consistent');
    expect(result.server.provider).toBe('alicloud');
    const instance = emu.state.instances.get(result.server.id);
    expect(instance?.status).toBe('Running');
    expect(instance?.vSwitchId).toBe(emu.state.network.drillVSwitchId);
    expect(result.server.endpoint).toBe(instance?.privateIp);
    expect(result.health.output).toBe(`instance ${result.server.id} is Running`);
    // The bootability check ran on the system volume and says what it found, with the remedy.
    expect(result.server.warnings?.[0]).toMatch(/^will not boot: no root file system found/);
    expect(tagged(result.opId)).toContain(result.server.id);

    const c = await dr(['cleanup', result.opId, '--wait'], env);
    expect(c.code).toBe(0);
    expect(c.out).toContain(`${result.opId}: cleaned up`);
    expect(tagged(result.opId)).toEqual([]);
    expect(emu.state.instances.get(emu.state.workerInstanceId)?.status).toBe('Running');
    // the worker never logs the secret
    expect(w.output()).not.toContain(secret);
  }, 120_000);

  it('fails over into ECS end to end: production network, the volume byte for byte, replication stopped, kept running', async () => {
    await protect();
    const w = await worker({
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret,
    });
    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.mode).toBe('failover');
    const instance = emu.state.instances.get(result.server.id);
    expect(instance?.status).toBe('Running');
    expect(instance?.vSwitchId).toBe(emu.state.network.vSwitchId);
    expect(instance?.securityGroupIds).toEqual([emu.state.network.securityGroupId]);
    // the new server's system disk holds the volume as replicated
    const sys = [...emu.state.disks.values()].find(
      (d) => d.instanceId === result.server.id && d.type === 'system',
    );
    const source = await readFile(join(t.dir, 'web.img'));
    // (the emulated disk is a sparse file of the disk's full size: read only the volume's part)
    const fh = await open(sys?.file ?? '', 'r');
    const { buffer } = await fh.read(Buffer.alloc(source.length), 0, source.length, 0);
    await fh.close();
    expect(buffer.equals(source)).toBe(true);
    // replication into the DR copy is stopped, and nothing is cleaned up
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('paused');
    expect(await dr(['agent', '--app', 'web', '--once'], env)).toMatchObject({ code: 2 });
    expect(tagged(result.opId)).toContain(result.server.id);
    // The way home needs `dr` and the source's DR_HOME on the instance (/etc/lifeboat by
    // default, absent here): the failback says so, and the app keeps running on ECS.
    const fb = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(fb.code).toBe(1);
    const body = JSON.parse(fb.out) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('way_home_failed');
    expect(body.error.message).toContain(
      `the way home of web could not start its agent on ${result.server.id}: the command lifeboat-way-home-web on ${result.server.id} ended Failed (ExitCodeNonzero: the command exited with 7); last output: no Lifeboat home at /etc/lifeboat on this instance (no dr.yaml there). To resolve, the instance needs \`dr\` and the source's DR_HOME`,
    );
    expect(emu.state.instances.get(result.server.id)?.status).toBe('Running');
    expect((await dr(['status', 'web', '--json'], env)).out).toContain('failed-over');
    expect(w.output()).not.toContain(secret);
  }, 120_000);

  it('a failover releases the kept drill instance before it launches its own', async () => {
    await protect();
    const w = await worker({
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret,
    });
    const d = await dr(['drill', 'web', '--keep', '30m', '--wait', '--json'], env);
    expect(d.code).toBe(0);
    const drill = JSON.parse(d.out) as OperationResult;
    expect(emu.state.instances.get(drill.server.id)?.status).toBe('Running');
    const sent = emu.state.requests.length;

    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.drills).toEqual([
      expect.objectContaining({
        opId: drill.opId,
        ended: true,
        detail: `ended drill server of ${drill.opId} first`,
      }),
    ]);
    expect(result.drills?.[0]?.removed).toContain(drill.server.id);
    // The drill's instance and everything tagged with it are released, before the failover's
    // instance is asked for; its delayed cleanup will not run on what is gone.
    expect(emu.state.instances.has(drill.server.id)).toBe(false);
    expect(tagged(drill.opId)).toEqual([]);
    const actions = emu.state.requests.slice(sent).map((q) => q.action);
    expect(actions).toContain('DeleteInstances');
    expect(actions.lastIndexOf('DeleteInstances')).toBeLessThan(actions.indexOf('RunInstances'));
    const { conn, client } = recoveryClient(redis.url, env.DR_REDIS_PREFIX ?? '');
    try {
      expect(await client.queue.getJob(`${drill.opId}-cleanup`)).toBeUndefined();
    } finally {
      await client.close();
      conn.disconnect();
    }
    // Production runs alone, on the production network.
    const instance = emu.state.instances.get(result.server.id);
    expect(instance?.status).toBe('Running');
    expect(instance?.vSwitchId).toBe(emu.state.network.vSwitchId);
    expect(w.output()).not.toContain(secret);
  }, 180_000);

  it('refuses a failover whose system disk would not boot before it stops replication or fences', async (ctx) => {
    const missing = await systemDiskToolsMissing();
    if (missing) skipBecause(ctx, missing);
    // A real ext4 system disk whose fstab mounts / as /dev/sda1: no such device on ECS.
    const image = join(t.dir, 'root.img');
    await makeSystemDisk(image, {
      sizeMiB: 24,
      files: {
        '/etc/fstab': '/dev/sda1 / ext4 defaults 0 1\n',
        [`/boot/vmlinuz-${KERNEL}`]: 'k',
        [`/boot/initrd.img-${KERNEL}`]: gzip(
          cpioNewc({ [`usr/lib/modules/${KERNEL}/kernel/drivers/block/virtio_blk.ko`]: 'm' }),
        ),
      },
    });
    const fenced = join(t.dir, 'fenced');
    await protect({ image, bootCheck: 'enforce', fence: `touch ${fenced}` });
    // The agent replicates continuously while the failover is asked for.
    const agent = startDr(['agent', '--app', 'web', '--interval', '200ms'], {
      ...env,
      DR_LOG_LEVEL: 'info',
    });
    const client = await t.client();
    const pointCount = async () => (await client.points('web')).length;
    /** A write outside the partition (its last MiB) that the agent ships as a new point. */
    const write = async () => {
      const fh = await open(image, 'r+');
      await fh.write(randomBytes(4096), 0, 4096, 23 * 1024 * 1024);
      await fh.close();
    };
    const first = await pointCount();
    await write();
    await waitFor(
      'the running agent to commit a point',
      async () => (await pointCount()) > first,
      60_000,
    );
    const w = await worker({
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret,
    });
    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { opId: string; error: { code: string; message: string } };
    expect(body.error.code).toBe('boot_blocked');
    expect(body.error.message).toContain(
      'the recovered system disk of web would not boot on ECS: /etc/fstab line 1 (/dev/sda1 on /)',
    );
    // Nothing changed: nothing made in ECS (the failed operation's cleanup only looked for its
    // tagged resources), no fence, and replication goes on (the agent is accepted).
    expect(emu.state.requests.filter((q) => !q.action.startsWith('Describe'))).toEqual([]);
    await expect(stat(fenced)).rejects.toMatchObject({ code: 'ENOENT' });
    const before = await pointCount();
    await write();
    await waitFor('a point after the refusal', async () => (await pointCount()) > before, 60_000);
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('continuous');
    await agent.stop();

    // bootCheck: warn lets it go, and the problem is in the result.
    await updateConfig(t.home, (doc) =>
      doc.setIn(['apps', 'web', 'provider', 'bootCheck'], 'warn'),
    );
    const forced = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(forced.code).toBe(0);
    const result = JSON.parse(forced.out) as OperationResult;
    expect(result.server.warnings?.[0]).toMatch(/^will not boot: \/etc\/fstab line 1/);
    expect(result.fence?.fenced).toBe(true);
    expect(w.output()).not.toContain(secret);
  }, 180_000);

  it('fails a drill naming ALIBABA_CLOUD_ACCESS_KEY_SECRET when the worker lacks it', async () => {
    await protect();
    const w = await worker({
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: '',
    });
    const r = await dr(['drill', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { opId: string; error: { code: string; message: string } };
    expect(body.error.code).toBe('key_invalid');
    expect(body.error.message).toContain('ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set');
    expect(tagged(body.opId)).toEqual([]);
    expect(emu.state.requests).toEqual([]);
    expect(w.output()).not.toContain(secret);
  }, 60_000);
});
