import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DescribeDisksRequest } from '@alicloud/ecs20140526';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { createLogger, type Logger } from '../../../../core/log.js';
import { createEcsClient, ecsCall, make } from '../../../../replicator/providers/alicloud-ecs.js';
import {
  type AlicloudOptions,
  createAlicloudProvider,
} from '../../../../replicator/providers/alicloud-provider.js';
import type { MaterialisedVolume, Provider } from '../../../../replicator/providers/provider.js';
import { type EcsEmulator, startEcsEmulator } from '../../../fakes/ecs-emulator.js';

const MiB = 1024 * 1024;

let dir: string;
let emu: EcsEmulator;
let keyId: string;
let secret: string;
let volumes: MaterialisedVolume[];
let logLines: string[];
let log: Logger;

/** A volume image with data scattered between holes, of a size that is not a whole block. */
async function makeVolume(name: string, size: number): Promise<MaterialisedVolume> {
  const path = join(dir, `${name}.raw`);
  const f = await open(path, 'w');
  await f.truncate(size);
  for (const at of [0, Math.floor(size / 3), size - 4096]) {
    await f.write(randomBytes(4096), 0, 4096, at);
  }
  await f.close();
  return { name, path, size };
}

function options(over: Partial<AlicloudOptions> = {}): AlicloudOptions {
  const n = emu.state.network;
  return {
    regionId: emu.state.regionId,
    zoneId: emu.state.zoneId,
    vSwitchId: n.vSwitchId,
    securityGroupId: n.securityGroupId,
    drillVSwitchId: n.drillVSwitchId,
    drillSecurityGroupId: n.drillSecurityGroupId,
    instanceType: 'ecs.g7.large',
    workerInstanceId: emu.state.workerInstanceId,
    endpoint: emu.endpoint,
    protocol: 'http',
    accessKeyId: keyId,
    accessKeySecret: secret,
    attachPoll: 20,
    diskByIdDir: emu.byIdDir,
    // These volumes are random bytes, not bootable disks: the check reports, it does not stop them.
    bootCheck: 'warn',
    retry: { baseDelayMs: 10, maxDelayMs: 50 },
    ...over,
  };
}

function launchRequest(opId: string, mode: 'drill' | 'failover', steps?: Map<string, number>) {
  return {
    opId,
    app: 'shop',
    mode,
    volumes,
    signal: new AbortController().signal,
    log,
    onStep: (step: string, fraction: number) => steps?.set(step, fraction),
  };
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

/** Everything an error could show a user or a log: message, stack, own fields, causes. */
function everything(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    parts.push(
      String(e),
      (e as Error).stack ?? '',
      JSON.stringify(e, Object.getOwnPropertyNames(e)),
    );
  }
  return parts.join('\n');
}

/** Resources of the emulated region other than the worker, by kind. */
function resources() {
  const s = emu.state;
  return {
    instances: [...s.instances.values()].filter((i) => i.id !== s.workerInstanceId),
    disks: [...s.disks.values()],
    snapshots: [...s.snapshots.values()],
    images: [...s.images.values()],
  };
}

async function sameBytes(diskFile: string, v: MaterialisedVolume): Promise<boolean> {
  const image = await readFile(v.path);
  const f = await open(diskFile, 'r');
  try {
    const head = Buffer.alloc(v.size + MiB);
    await f.read(head, 0, head.length, 0);
    return head.subarray(0, v.size).equals(image) && head.subarray(v.size).every((b) => b === 0);
  } finally {
    await f.close();
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-ecs-'));
  keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
  secret = randomBytes(22).toString('base64url');
  emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: dir });
  volumes = [await makeVolume('root', 5 * MiB + 512), await makeVolume('data', 3 * MiB + 12_345)];
  logLines = [];
  log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    }),
  });
});

afterEach(async () => {
  await emu.close();
  await rm(dir, { recursive: true, force: true });
  // No line logged by any test may hold the access key secret.
  for (const line of logLines) expect(line).not.toContain(secret);
});

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
    await emu.close();
    emu = await startEcsEmulator({
      accessKeyId: keyId,
      accessKeySecret: secret,
      dataDir: dir,
      diskInterface: 'nvme',
      timings: { createDiskMs: 300 },
    });
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

  it('retries throttling and 5xx answers and still launches', async () => {
    emu.inject(
      'RunInstances',
      {
        status: 400,
        code: 'Throttling.User',
        message: 'Request was denied due to user flow control.',
      },
      2,
    );
    emu.inject(
      'CreateImage',
      {
        status: 503,
        code: 'ServiceUnavailable',
        message: 'The request has failed due to a temporary failure of the server.',
      },
      1,
    );
    const provider = createAlicloudProvider(options());
    const server = await provider.launch(launchRequest('op-throttled', 'drill'));
    expect(emu.state.instances.get(server.id)?.status).toBe('Running');
    const calls = (action: string) =>
      emu.state.requests.filter((r) => r.action === action).map((r) => r.code ?? r.status);
    expect(calls('RunInstances')).toEqual(['Throttling.User', 'Throttling.User', 200]);
    expect(calls('CreateImage')).toEqual(['ServiceUnavailable', 200]);
    expect(resources().instances).toHaveLength(1);
  });

  it("fails on a quota error with ECS's code and message, not retried, and cleans up after itself", async () => {
    emu.inject('RunInstances', {
      status: 400,
      code: 'QuotaExceed.ElasticQuota',
      message: 'The total number of vCPUs of pay-as-you-go instances exceeds the quota.',
    });
    const provider = createAlicloudProvider(options());
    const err = await failure(provider.launch(launchRequest('op-quota', 'drill')));
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err.message).toContain(
      'ECS QuotaExceed.ElasticQuota: The total number of vCPUs of pay-as-you-go instances exceeds the quota.',
    );
    expect(err.message).toContain('raise the quota');
    expect(everything(err)).not.toContain(secret);
    expect(emu.state.requests.filter((r) => r.action === 'RunInstances')).toHaveLength(1);

    expect(await provider.leftovers()).toEqual([]);
    expect(resources()).toEqual({ instances: [], disks: [], snapshots: [], images: [] });
    expect(await provider.destroy('op-quota', log)).toEqual([]);
  });

  it('fails at once on a parameter ECS refuses', async () => {
    const provider = createAlicloudProvider(options({ instanceType: 'large' }));
    const err = await failure(provider.launch(launchRequest('op-badtype', 'drill')));
    expect(err.message).toContain(
      'ECS InvalidInstanceType.ValueNotSupported: The instance type large',
    );
    expect(emu.state.requests.filter((r) => r.action === 'RunInstances')).toHaveLength(1);
    await provider.destroy('op-badtype', log);
  });

  it('refuses a forged signature and an unknown key, creating nothing', async () => {
    const wrong = randomBytes(22).toString('base64url');
    const forged = createAlicloudProvider(options({ accessKeySecret: wrong }));
    const err = await failure(forged.launch(launchRequest('op-forged', 'drill')));
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err.message).toContain('ECS SignatureDoesNotMatch');
    expect(everything(err)).not.toContain(wrong);
    expect(emu.state.requests[0]).toMatchObject({ action: 'CreateDisk', status: 400 });

    const stranger = createAlicloudProvider(options({ accessKeyId: 'LTAI5tNoSuchKey0000' }));
    const err2 = await failure(stranger.leftovers());
    expect(err2.message).toContain('ECS InvalidAccessKeyId.NotFound');
    expect(resources().disks).toEqual([]);
  });

  it('reports an unreachable endpoint as a provider failure with a remedy', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const provider = createAlicloudProvider(options({ endpoint: `127.0.0.1:${port}` }));
    const err = await failure(provider.leftovers());
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err.message).toMatch(/^ECS DescribeInstances failed: .*ECONNREFUSED/);
    expect(err.message).toContain('check that the ECS endpoint is reachable');
    expect(everything(err)).not.toContain(secret);
  });

  it('gives up on an instance that never reaches Running, and cleans up after itself', async () => {
    emu.state.stallInstances = true;
    const provider = createAlicloudProvider(options({ runningTimeoutMs: 500 }));
    const err = await failure(provider.launch(launchRequest('op-stuck', 'drill')));
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err.message).toMatch(
      /instance i-\w+ did not reach Running within \d+ s \(last status: Starting\)/,
    );
    // The instance stuck in Starting was released, with the image, snapshots and disks.
    expect(emu.state.requests.filter((r) => r.action === 'DeleteInstances')).toHaveLength(1);
    expect(resources()).toEqual({ instances: [], disks: [], snapshots: [], images: [] });
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

  it('emulator: refuses a call missing a mandatory parameter, as ECS does', async () => {
    const client = createEcsClient({
      regionId: emu.state.regionId,
      endpoint: emu.endpoint,
      protocol: 'http',
      accessKeyId: keyId,
      accessKeySecret: secret,
    });
    const err = await failure(
      ecsCall('DescribeDisks', secret, () => client.describeDisks(make(DescribeDisksRequest, {}))),
    );
    expect(err.message).toBe(
      'ECS MissingParameter: The input parameter "RegionId" that is mandatory for processing this request is not supplied.',
    );
    const bad = await failure(
      ecsCall('DescribeDisks', secret, () =>
        client.describeDisks(
          make(DescribeDisksRequest, { regionId: emu.state.regionId, diskIds: 'd-1' }),
        ),
      ),
    );
    expect(bad.message).toContain('ECS InvalidDiskIds.Malformed');
  });
});
