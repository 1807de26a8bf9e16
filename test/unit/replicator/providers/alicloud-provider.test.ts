import { readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { createAlicloudProvider } from '../../../../replicator/providers/alicloud-provider.js';
import type { MaterialisedVolume, Provider } from '../../../../replicator/providers/provider.js';
import {
  dir,
  emu,
  failure,
  launchRequest,
  log,
  options,
  resources,
  restartEmulator,
  sameBytes,
  useEcsRig,
  volumes,
} from '../../../helpers/ecs-rig.js';

useEcsRig();

// Failures, retries and the emulator's own checks are in alicloud-provider-failures.test.ts.
describe('alicloud provider against the ECS emulator', () => {
  it('launches a drill into the isolated network with the volumes byte for byte, all tagged', async () => {
    const provider: Provider = createAlicloudProvider(options());
    expect(provider.kind).toBe('alicloud');
    const steps = new Map<string, number>();
    const server = await provider.launch(launchRequest('op-drill-1', 'drill', steps));

    const inst = emu.state.instances.get(server.id);
    expect(inst?.status).toBe('Running');
    expect(inst?.vSwitchId).toBe(emu.state.network.drillVSwitchId);
    expect(inst?.securityGroupIds).toEqual([emu.state.network.drillSecurityGroupId]);
    expect(server).toMatchObject({ provider: 'alicloud', endpoint: inst?.privateIp });
    expect(server.endpoint).toMatch(/^10\.99\.0\.\d+$/);

    // The recovered server's own disks hold the images: system first, then the data disk.
    const own = resources().disks.filter((d) => d.instanceId === server.id);
    expect(own.map((d) => d.type)).toEqual(['system', 'data']);
    const [sys, data] = own;
    expect(sys && (await sameBytes(sys.file, volumes[0] as MaterialisedVolume))).toBe(true);
    expect(data && (await sameBytes(data.file, volumes[1] as MaterialisedVolume))).toBe(true);
    // So do the disks written through the worker, now detached again.
    const written = resources().disks.filter((d) => d.instanceId === '');
    expect(written.map((d) => d.status)).toEqual(['Available', 'Available']);
    for (const [i, d] of written.entries()) {
      // cloud_essd PL1 starts at 20 GiB: a 5 MiB volume gets a 20 GiB disk.
      expect(d).toMatchObject({ size: 20, category: 'cloud_essd', performanceLevel: 'PL1' });
      expect(await sameBytes(d.file, volumes[i] as MaterialisedVolume)).toBe(true);
    }

    const r = resources();
    const all = [...r.instances, ...r.disks, ...r.snapshots, ...r.images];
    expect(r.snapshots).toHaveLength(2);
    expect(r.images).toHaveLength(1);
    // The system volume's snapshot is of a data disk: the image takes it through
    // DiskDeviceMapping as its system disk, with the OS facts ECS cannot read from it.
    expect(r.images[0]).toMatchObject({
      platform: 'Others Linux',
      architecture: 'x86_64',
      bootMode: 'BIOS',
      disks: [{ type: 'system', size: 20 }],
    });
    expect(emu.state.snapshots.get(r.images[0]?.snapshotId ?? '')?.diskType).toBe('data');
    // The instance's disks are ESSD (ecs.g7 refuses the default system disk category).
    expect(own.map((d) => [d.category, d.performanceLevel])).toEqual([
      ['cloud_essd', 'PL1'],
      ['cloud_essd', 'PL1'],
    ]);
    // Disks start Creating: the provider attached each only once it was Available.
    const attaches = emu.state.requests.filter((q) => q.action === 'AttachDisk');
    expect(attaches.map((q) => q.status)).toEqual([200, 200]);
    for (const x of all) {
      expect(Object.fromEntries(x.tags)).toMatchObject({
        'lifeboat-op': 'op-drill-1',
        'lifeboat-app': 'shop',
        'lifeboat-mode': 'drill',
      });
    }
    expect([...steps.keys()]).toEqual([
      'bootcheck',
      'disks',
      'copy',
      'snapshot',
      'image',
      'instance',
    ]);
    expect([...steps.values()]).toEqual([1, 1, 1, 1, 1, 1]);
    expect(server.warnings).toEqual([
      'will not boot: no root file system found on the system disk (no ext file system with /etc/fstab). To resolve, make the first volume of the app the disk the server boots from',
    ]);
    expect(await provider.leftovers()).toEqual(['op-drill-1']);

    const removed = await provider.destroy('op-drill-1', log);
    expect(removed.sort()).toEqual(
      all
        .map((x) => x.id)
        .filter((id) => !own.some((d) => d.id === id))
        .sort(),
    );
    expect(resources()).toEqual({ instances: [], disks: [], snapshots: [], images: [] });
    expect(emu.state.instances.get(emu.state.workerInstanceId)?.status).toBe('Running');
    expect((await readdir(dir)).sort()).toEqual(['by-id', 'data.raw', 'root.raw']);
    expect(await readdir(emu.byIdDir)).toEqual([]);
    expect(await provider.leftovers()).toEqual([]);
    expect(await provider.destroy('op-drill-1', log)).toEqual([]);
  });

  it('finds the attached disks by serial on an NVMe worker, never by the device ECS names', async () => {
    await restartEmulator({ diskInterface: 'nvme', timings: { createDiskMs: 300 } });
    const seen: string[] = [];
    const provider = createAlicloudProvider(options());
    const server = await provider.launch({
      ...launchRequest('op-nvme', 'failover'),
      onStep: (step) => {
        if (step === 'copy' && seen.length === 0) {
          seen.push(...[...emu.state.disks.values()].map((d) => d.device));
        }
      },
    });
    // While written, ECS called them /dev/xvdb and /dev/xvdc: no such path on the worker.
    expect(seen.sort()).toEqual(['/dev/xvdb', '/dev/xvdc']);
    const own = resources().disks.filter((d) => d.instanceId === server.id);
    expect(own[0] && (await sameBytes(own[0].file, volumes[0] as MaterialisedVolume))).toBe(true);
    expect(own[1] && (await sameBytes(own[1].file, volumes[1] as MaterialisedVolume))).toBe(true);
    await provider.destroy('op-nvme', log);
  });

  it('fails with the remedy when the attached disk never shows under by-id, and cleans up', async () => {
    const provider = createAlicloudProvider(
      options({ diskByIdDir: join(dir, 'not-the-worker'), deviceTimeoutMs: 300 }),
    );
    const err = await failure(provider.launch(launchRequest('op-elsewhere', 'drill')));
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err.message).toMatch(
      /^disk d-\w+ is attached but no device with serial \w+ appeared under/,
    );
    expect((err as { remedy?: string }).remedy).toContain('workerInstanceId');
    expect(resources()).toEqual({ instances: [], disks: [], snapshots: [], images: [] });
  });

  it('launches a failover into the production vSwitch and security group', async () => {
    const provider = createAlicloudProvider(options());
    const server = await provider.launch(launchRequest('op-fail-1', 'failover'));
    const inst = emu.state.instances.get(server.id);
    expect(inst?.status).toBe('Running');
    expect(inst?.vSwitchId).toBe(emu.state.network.vSwitchId);
    expect(inst?.securityGroupIds).toEqual([emu.state.network.securityGroupId]);
    expect(server.endpoint).toMatch(/^10\.0\.1\.\d+$/);
    await provider.destroy('op-fail-1', log);
    expect(await provider.leftovers()).toEqual([]);
  });

  it('checks health by URL with {ip} and by command with LIFEBOAT_SERVER_IP', async () => {
    const seen: string[] = [];
    const http = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(req.url?.includes('10.99.') ? 200 : 503).end('db ok');
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const base = createAlicloudProvider(options());
    const server = await base.launch(launchRequest('op-health', 'drill'));
    const o = { timeoutMs: 5000, signal: new AbortController().signal };
    try {
      const byUrl = createAlicloudProvider(
        options({ healthCheck: { url: `http://127.0.0.1:${port}/health?ip={ip}` } }),
      );
      expect(await byUrl.health(server, o)).toMatchObject({ ok: true, output: 'HTTP 200 db ok' });
      expect(seen).toEqual([`/health?ip=${server.endpoint}`]);

      const script = join(dir, 'check.sh');
      await writeFile(
        script,
        `echo "checking $LIFEBOAT_SERVER_IP"\ntest "$LIFEBOAT_SERVER_IP" = "${server.endpoint}"\n`,
      );
      const byCommand = createAlicloudProvider(
        options({ healthCheck: { command: `sh ${script}` } }),
      );
      expect(await byCommand.health(server, o)).toMatchObject({
        ok: true,
        output: `checking ${server.endpoint}`,
      });
      const failing = createAlicloudProvider(
        options({ healthCheck: { command: 'echo no table; exit 3' } }),
      );
      expect(await failing.health(server, o)).toMatchObject({ ok: false, output: 'no table' });
      const hanging = createAlicloudProvider(options({ healthCheck: { command: 'sleep 30' } }));
      const hung = await hanging.health(server, { ...o, timeoutMs: 100 });
      expect(hung.ok).toBe(false);
      expect(hung.output).toContain('killed after 100 ms');
      // With no check configured, health is the instance's state.
      expect(await base.health(server, o)).toMatchObject({
        ok: true,
        output: `instance ${server.id} is Running`,
      });
    } finally {
      http.close();
      await base.destroy('op-health', log);
    }
  });
});
