/**
 * An alicloud app from chat, end to end: `dr serve` on DingTalk, `dr gateway`, `dr worker` and the
 * ECS emulator with status changes that take seconds. The app's system disk is a real ext4 image
 * that would not boot on ECS: the drill runs and its card lists the problems with their
 * remedies; the failover stops before anything changes and says why, while replication goes
 * on; with `bootCheck: warn` it fails over, and `dr failback` brings it home by reverse
 * replication from the ECS instance.
 */
import { randomBytes } from 'node:crypto';
import { cp, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { DingTalkGateway } from '../fakes/dingtalk-gateway.js';
import { DingTalkOpenApi } from '../fakes/dingtalk-openapi.js';
import { type EcsEmulator, startEcsEmulator } from '../fakes/ecs-emulator.js';
import { emulatedSite } from '../helpers/ecs-site.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import { recoveryEnv } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { cpioNewc, gzip, makeSystemDisk, systemDiskToolsMissing } from '../helpers/system-disk.js';
import { waitFor } from '../helpers/wait-for.js';

const problem = redisUnavailable() ?? (await systemDiskToolsMissing());
const KERNEL = '6.1.0-18-amd64';
const drBin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));

describe('alicloud from chat: drill and failover of an app whose disk would not boot on ECS', () => {
  let t: TestHome;
  let redis: TestRedis;
  let emu: EcsEmulator;
  let gateway: DingTalkGateway;
  let openapi: DingTalkOpenApi;
  let serve: DrProcess;
  let worker: DrProcess;
  let env: NodeJS.ProcessEnv;
  let image: string;
  let guestHome: string | undefined;

  beforeAll(async () => {
    if (problem) return; // each test says why it skips
    redis = await startRedis();
    t = await testHome();
    const keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
    const secret = randomBytes(22).toString('base64url');
    // Each status change takes seconds, as on the real service (there, tens of seconds).
    emu = await startEcsEmulator({
      accessKeyId: keyId,
      accessKeySecret: secret,
      dataDir: t.dir,
      timings: {
        createDiskMs: 1500,
        attachMs: 1000,
        detachMs: 800,
        snapshotMs: 2000,
        imageMs: 2000,
        pendingMs: 1500,
        startingMs: 2000,
        deleteMs: 1000,
        stopMs: 1500,
        invokeMs: 1000,
      },
    });
    gateway = new DingTalkGateway();
    await gateway.start();
    openapi = new DingTalkOpenApi(gateway.clientId, gateway.clientSecret);
    await openapi.start();
    env = {
      ...recoveryEnv(t.home, redis.url, 'a').env,
      DR_LOG_LEVEL: 'info',
      DINGTALK_CLIENT_ID: gateway.clientId,
      DINGTALK_CLIENT_SECRET: gateway.clientSecret,
      DINGTALK_API_URL: openapi.url,
      DINGTALK_GATEWAY_URL: gateway.openUrl,
      DINGTALK_CARD_TEMPLATE_ID: 'lifeboat-card.schema',
    };
    await startDr(['gateway'], env).waitFor(/publishing replication state/);

    // The root file system is mounted as /dev/sda1 and the initramfs has no virtio driver.
    image = join(t.dir, 'web.img');
    await makeSystemDisk(image, {
      sizeMiB: 24,
      files: {
        '/etc/fstab': '/dev/sda1 / ext4 defaults 0 1\n',
        [`/boot/vmlinuz-${KERNEL}`]: 'k',
        [`/boot/initrd.img-${KERNEL}`]: gzip(cpioNewc({ init: '#!/bin/sh' })),
        '/etc/cloud/cloud.cfg': 'x',
      },
    });
    const added = await dr(
      [
        '--home',
        t.home,
        'app',
        'add',
        'web',
        '--volume',
        `root=${image}`,
        '--quiesce-freeze',
        'true',
        '--quiesce-thaw',
        'true',
      ],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(added.err).toBe('');
    await updateConfig(t.home, (doc) => {
      doc.setIn(
        ['apps', 'web', 'provider'],
        doc.createNode({
          kind: 'alicloud',
          ...emulatedSite(emu),
          checkTimeout: '20s',
        }),
      );
      doc.setIn(
        ['people', 'sam'],
        doc.createNode({ ids: ['dingtalk:staff-sam'], groups: ['sre-oncall'] }),
      );
    });
    const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(once.code).toBe(0);

    worker = startDr(['worker', '--concurrency', '2'], {
      ...env,
      ALIBABA_CLOUD_ACCESS_KEY_ID: keyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: secret,
    });
    await worker.waitFor(/worker ready/);
    const listen = `127.0.0.1:${await freePort()}`;
    serve = startDr(['serve', '--listen', listen], env);
    await serve.waitFor(/DingTalk: on/, 30_000);
    await waitFor('the DingTalk stream', () => gateway.connections === 1);
  }, 180_000);

  afterAll(async () => {
    // A way-home agent the failback did not stop (a failed test): it runs in its own session.
    const pid = guestHome
      ? await readFile(join(guestHome, 'way-home-web.pid'), 'utf8').catch(() => '') // none: stopped
      : '';
    if (Number(pid) > 0) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // it ended by itself meanwhile
      }
    }
    await serve?.stop();
    await stopAll();
    await gateway?.stop();
    await openapi?.stop();
    await emu?.close();
    await redis?.stop();
    await t?.cleanup();
  });

  function explainFailure(): void {
    onTestFailed(() => {
      const cards = [...openapi.cards.values()].map(
        (c) => `${c.openSpaceId} [${c.updates}] ${c.params.summary}\n${c.params.details}`,
      );
      process.stderr.write(
        `--- cards\n${cards.join('\n')}\n--- messages\n${openapi.messages.map((m) => `${m.kind} ${m.to} ${m.text}`).join('\n')}\n--- worker\n${worker?.output().slice(-6000)}\n`,
      );
    });
  }

  const text = (c: { params: Record<string, string> }) =>
    `${c.params.summary}\n${c.params.details}`;

  it('drills from DingTalk: a Running instance, the boot problems with remedies on the card', {
    timeout: 240_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    gateway.robotMessage('dr drill web', {
      staffId: 'staff-sam',
      conversationId: 'cid-web',
      sessionWebhook: openapi.sessionWebhook(),
    });
    const card = await waitFor(
      'the drill result on the card',
      () => openapi.cardsIn('cid-web').find((c) => /RTO/.test(c.params.summary ?? '')),
      180_000,
    );
    expect(card.params.summary).toMatch(/Drill of web is healthy/);
    expect(text(card)).toContain('warning: will not boot: /etc/fstab line 1 (/dev/sda1 on /)');
    expect(text(card)).toContain('lacks the virtio block driver (virtio_blk)');
    expect(text(card)).toContain('To resolve, add virtio_blk to the initramfs');
    const drilled = [...emu.state.instances.values()].filter(
      (i) => i.tags.get('lifeboat-mode') === 'drill',
    );
    expect(drilled.map((i) => [i.status, i.vSwitchId])).toEqual([
      ['Running', emu.state.network.drillVSwitchId],
    ]);
  });

  it('refuses the failover before anything is made in ECS, saying why', {
    timeout: 240_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    gateway.robotMessage('dr failover web', {
      staffId: 'staff-sam',
      conversationId: 'cid-web',
      sessionWebhook: openapi.sessionWebhook(),
    });
    const said = await waitFor(
      'the failover refused',
      () =>
        [...openapi.cards.values()].map(text).find((s) => /would not boot on ECS/.test(s)) ??
        openapi.messages.map((m) => m.text).find((s) => /would not boot on ECS/.test(s)),
      180_000,
    );
    expect(said).toContain('/etc/fstab line 1 (/dev/sda1 on /)');
    expect(said).toContain('bootCheck: warn');
    const made = [...emu.state.disks.values(), ...emu.state.instances.values()].filter(
      (x) => x.tags.get('lifeboat-mode') === 'failover',
    );
    expect(made).toEqual([]);
    // Checked before anything changed: the app is still protected, not failed over.
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.protection?.state ?? 'protected').toBe('protected');
    expect(
      await dr(['agent', '--app', 'web', '--once'], { ...env, DR_LOG_LEVEL: 'silent' }),
    ).toMatchObject({ code: 0 });
  });

  it('fails over with bootCheck warn, then comes home from ECS by reverse replication', {
    timeout: 420_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    explainFailure();
    // The source's DR_HOME, as it travels on its disks to the recovered instance.
    guestHome = join(t.dir, 'guest-home');
    await cp(t.home, guestHome, { recursive: true });
    await updateConfig(t.home, (doc) => {
      doc.setIn(['apps', 'web', 'provider', 'bootCheck'], 'warn');
      doc.setIn(['apps', 'web', 'provider', 'agentHome'], guestHome);
      doc.setIn(['apps', 'web', 'provider', 'agentCommand'], `${process.execPath} ${drBin}`);
    });
    gateway.robotMessage('dr failover web', {
      staffId: 'staff-sam',
      conversationId: 'cid-web',
      sessionWebhook: openapi.sessionWebhook(),
    });
    const failed = await waitFor(
      'the failover result on the card',
      () =>
        openapi
          .cardsIn('cid-web')
          .find((c) => /Failover of web is healthy/.test(c.params.summary ?? '')),
      240_000,
    );
    const instanceId = /server: (i-\S+)/.exec(text(failed))?.[1] ?? '';
    const sys = [...emu.state.disks.values()].find(
      (d) => d.instanceId === instanceId && d.type === 'system',
    );
    expect(sys).toBeDefined();
    // The app writes on ECS (in the disk's last MiB, outside its file system).
    const onEcs = randomBytes(64 * 1024);
    const fh = await open(sys?.file ?? '', 'r+');
    await fh.write(onEcs, 0, onEcs.length, 23 * 1024 * 1024);
    await fh.close();
    const expected = await readFile(image);
    onEcs.copy(expected, 23 * 1024 * 1024);
    // The source's agent stands by through the failover and resumes after the failback.
    startDr(['agent', '--app', 'web', '--interval', '200ms'], env);

    gateway.robotMessage('dr failback web', {
      staffId: 'staff-sam',
      conversationId: 'cid-web',
      sessionWebhook: openapi.sessionWebhook(),
    });
    const said = await waitFor(
      'the failback result',
      () =>
        [
          ...openapi.cards.values(),
          ...openapi.messages.map((m) => ({ params: { summary: m.text, details: '' } })),
        ]
          .map(text)
          .find((x) => /Failback of web (done|failed)/.test(x)),
      300_000,
    );
    expect(said).toMatch(
      /Failback of web done \(op-\w+\): home from ECS by reverse replication, .* written back, .*protected again/,
    );
    expect((await readFile(image)).equals(expected)).toBe(true);
    expect(emu.state.instances.has(instanceId)).toBe(false);
    const actions = emu.state.requests.map((q) => q.action);
    expect(actions.lastIndexOf('StopInstance')).toBeGreaterThan(actions.lastIndexOf('RunCommand'));
  });
});
