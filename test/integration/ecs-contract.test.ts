/**
 * The ECS emulator checked by clients we did not write: @alicloud/pop-core (RPC, HMAC-SHA1, GET
 * and POST form) and @alicloud/ecs20140526 (ACS3-HMAC-SHA256, ACS3-HMAC-SM3 and its own RPC mode),
 * accepted when the call is right and refused with ECS's codes when it is wrong.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ecs from '@alicloud/ecs20140526';
import { $OpenApiUtil } from '@alicloud/openapi-core';
import RPCClient from '@alicloud/pop-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EcsEmulator, startEcsEmulator } from '../fakes/ecs-emulator.js';
import { waitFor } from '../helpers/wait-for.js';

type Body = Record<string, unknown>;
type Params = Record<string, string | number | boolean>;
interface Refusal {
  status?: number;
  code: string;
  requestId: string;
}
interface Style {
  name: string;
  call(action: string, params: Params): Promise<Body>;
}

type EcsClass = typeof Ecs.default;
const EcsClient: EcsClass = (Ecs as { default?: EcsClass }).default ?? (Ecs as unknown as EcsClass);

let dir: string;
let emu: EcsEmulator;
let keyId: string;
let secret: string;

function popCore(method: 'GET' | 'POST', key = secret): Style {
  const client = new RPCClient({
    accessKeyId: keyId,
    accessKeySecret: key,
    endpoint: `http://${emu.endpoint}`,
    apiVersion: '2014-05-26',
  });
  return {
    name: `pop-core RPC HMAC-SHA1 ${method}`,
    call: async (action, params) => (await client.request(action, params, { method })) as Body,
  };
}

/** The ECS SDK's own client, calling through the same path its typed methods use. */
function sdk(signatureAlgorithm: string, key = secret): Style {
  const client = new EcsClient(
    new $OpenApiUtil.Config({
      accessKeyId: keyId,
      accessKeySecret: key,
      regionId: emu.state.regionId,
      endpoint: emu.endpoint,
      protocol: 'http',
      signatureAlgorithm,
    }),
  );
  return {
    name: `ecs20140526 ${signatureAlgorithm}`,
    call: async (action, params) => {
      const query = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
      const r = (await client.callApi(
        new $OpenApiUtil.Params({
          action,
          version: '2014-05-26',
          protocol: 'HTTP',
          pathname: '/',
          method: 'POST',
          authType: 'AK',
          style: 'RPC',
          reqBodyType: 'formData',
          bodyType: 'json',
        }),
        new $OpenApiUtil.OpenApiRequest({ query }),
        {} as never,
      )) as { body: Body };
      return r.body;
    },
  };
}

/** What a client threw, in ECS's terms: HTTP status (where the client keeps it), Code, RequestId. */
async function refusal(p: Promise<unknown>): Promise<Refusal> {
  try {
    await p;
  } catch (err) {
    const e = err as {
      statusCode?: number;
      code?: string;
      data?: { Code?: string; RequestId?: string; statusCode?: number };
    };
    const status = e.statusCode ?? e.data?.statusCode;
    return {
      ...(status !== undefined ? { status } : {}),
      code: e.data?.Code ?? e.code ?? '',
      requestId: e.data?.RequestId ?? '',
    };
  }
  throw new Error('expected ECS to refuse the call');
}

const REQUEST_ID = /^[0-9A-F-]{36}$/;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-ecs-contract-'));
  keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
  secret = randomBytes(22).toString('base64url');
  emu = await startEcsEmulator({
    accessKeyId: keyId,
    accessKeySecret: secret,
    dataDir: dir,
    timings: { createDiskMs: 150, attachMs: 100, pendingMs: 150, startingMs: 150 },
  });
});

afterAll(async () => {
  await emu?.close();
  await rm(dir, { recursive: true, force: true });
});

const styles: [string, () => Style][] = [
  ['pop-core RPC HMAC-SHA1, GET', () => popCore('GET')],
  ['pop-core RPC HMAC-SHA1, POST form body', () => popCore('POST')],
  ['ecs20140526 ACS3-HMAC-SHA256', () => sdk('ACS3-HMAC-SHA256')],
  ['ecs20140526 ACS3-HMAC-SM3', () => sdk('ACS3-HMAC-SM3')],
  ['ecs20140526 RPC (v2)', () => sdk('v2')],
];

describe.each(styles)('ECS emulator with %s', (_name, make) => {
  it('accepts a right call and refuses a wrong one as ECS does, in every request form', async () => {
    const c = make();
    const region = emu.state.regionId;
    const zone = emu.state.zoneId;

    const regions = (await c.call('DescribeRegions', {})) as {
      RequestId: string;
      Regions: { Region: { RegionId: string }[] };
    };
    expect(regions.RequestId).toMatch(REQUEST_ID);
    expect(regions.Regions.Region.map((r) => r.RegionId)).toContain(region);

    // Size limits per category and performance level.
    const tooSmall = await refusal(
      c.call('CreateDisk', { RegionId: region, ZoneId: zone, DiskCategory: 'cloud_essd', Size: 5 }),
    );
    expect(tooSmall).toMatchObject({ code: 'InvalidDiskSize.ValueNotSupported' });
    expect(tooSmall.requestId).toMatch(REQUEST_ID);
    expect(
      await refusal(
        c.call('CreateDisk', {
          RegionId: region,
          ZoneId: zone,
          DiskCategory: 'cloud_essd',
          PerformanceLevel: 'PL2',
          Size: 100,
        }),
      ),
    ).toMatchObject({ code: 'InvalidDiskSize.ValueNotSupported' });
    expect(
      await refusal(
        c.call('CreateDisk', { RegionId: region, ZoneId: zone, DiskCategory: 'cloud_essd' }),
      ),
    ).toMatchObject({ code: 'MissingParameter' });
    expect(await refusal(c.call('CreateDisk', { ZoneId: zone, Size: 20 }))).toMatchObject({
      code: 'MissingParameter',
    });
    const pl0 = (await c.call('CreateDisk', {
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_essd',
      PerformanceLevel: 'PL0',
      Size: 1,
    })) as { DiskId: string };
    expect(emu.state.disks.get(pl0.DiskId)).toMatchObject({ size: 1, performanceLevel: 'PL0' });

    // A new disk is Creating; AttachDisk takes Available ones only.
    const { DiskId } = (await c.call('CreateDisk', {
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_essd',
      Size: 20,
      'Tag.1.Key': 'contract',
      'Tag.1.Value': 'yes',
    })) as { DiskId: string };
    const disks = async () =>
      (
        (await c.call('DescribeDisks', {
          RegionId: region,
          DiskIds: JSON.stringify([DiskId]),
        })) as { Disks: { Disk: Body[] } }
      ).Disks.Disk;
    expect((await disks())[0]).toMatchObject({ Status: 'Creating', PerformanceLevel: 'PL1' });
    const early = await refusal(
      c.call('AttachDisk', { DiskId, InstanceId: emu.state.workerInstanceId }),
    );
    expect(early).toMatchObject({ code: 'IncorrectDiskStatus' });
    expect(early.requestId).toMatch(REQUEST_ID);
    await waitFor(
      'the disk to become Available',
      async () => (await disks())[0]?.Status === 'Available',
    );
    await c.call('AttachDisk', { DiskId, InstanceId: emu.state.workerInstanceId });
    const attached = await waitFor('the disk to become In_use', async () => {
      const d = (await disks())[0];
      return d?.Status === 'In_use' ? d : undefined;
    });
    // The API names the device /dev/xvd?; the guest finds the disk by serial under by-id.
    expect(attached.Device).toMatch(/^\/dev\/xvd[b-z]$/);
    const serial = DiskId.replace(/^d-/, '').slice(0, 20);
    expect(attached.SerialNumber).toBe(serial);
    const link = join(emu.byIdDir, `virtio-${serial}`);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(emu.state.disks.get(DiskId)?.file);

    await c.call('DetachDisk', { DiskId, InstanceId: emu.state.workerInstanceId });
    await waitFor(
      'the disk to become Available',
      async () => (await disks())[0]?.Status === 'Available',
    );

    // CreateImage: SnapshotId takes system-disk snapshots; a data-disk snapshot needs
    // DiskDeviceMapping with DiskType=system and a Platform.
    const { SnapshotId } = (await c.call('CreateSnapshot', { DiskId })) as { SnapshotId: string };
    // Status changes show through the API (the emulator applies them as calls come).
    await waitFor('the snapshot', async () => {
      const r = (await c.call('DescribeSnapshots', {
        RegionId: region,
        SnapshotIds: JSON.stringify([SnapshotId]),
      })) as { Snapshots: { Snapshot: { Status: string }[] } };
      return r.Snapshots.Snapshot[0]?.Status === 'accomplished';
    });
    expect(await refusal(c.call('CreateImage', { RegionId: region, SnapshotId }))).toMatchObject({
      code: 'InvalidSnapshotId.NotSystemDiskSnapshot',
    });
    const mapping = {
      RegionId: region,
      'DiskDeviceMapping.1.SnapshotId': SnapshotId,
      'DiskDeviceMapping.1.DiskType': 'system',
    };
    expect(await refusal(c.call('CreateImage', mapping))).toMatchObject({
      code: 'MissingParameter',
    });
    expect(
      await refusal(c.call('CreateImage', { ...mapping, Platform: 'Ubuntu', BootMode: 'Legacy' })),
    ).toMatchObject({ code: 'InvalidBootMode.ValueNotSupported' });
    const { ImageId } = (await c.call('CreateImage', {
      ...mapping,
      Platform: 'Ubuntu',
      Architecture: 'x86_64',
      BootMode: 'BIOS',
    })) as { ImageId: string };
    await waitFor('the image', async () => {
      // DescribeImages lists Available images only, unless Status says otherwise.
      const r = (await c.call('DescribeImages', { RegionId: region, ImageId })) as {
        Images: { Image: unknown[] };
      };
      return r.Images.Image.length === 1;
    });

    // RunInstances: a 7th-generation family refuses the default system disk category.
    const n = emu.state.network;
    const run = {
      RegionId: region,
      ImageId,
      InstanceType: 'ecs.g7.large',
      VSwitchId: n.drillVSwitchId,
      SecurityGroupId: n.drillSecurityGroupId,
    };
    expect(await refusal(c.call('RunInstances', run))).toMatchObject({
      code: 'InvalidSystemDiskCategory.ValueNotSupported',
    });
    expect(
      await refusal(
        c.call('RunInstances', {
          ...run,
          'SystemDisk.Category': 'cloud_essd',
          'SystemDisk.Size': 10,
        }),
      ),
    ).toMatchObject({ code: 'InvalidSystemDiskSize.ValueNotSupported' });
    const started = (await c.call('RunInstances', {
      ...run,
      'SystemDisk.Category': 'cloud_essd',
    })) as {
      InstanceIdSets: { InstanceIdSet: string[] };
    };
    const id = started.InstanceIdSets.InstanceIdSet[0] ?? '';
    // Pending → Starting → Running, each seen through DescribeInstances.
    const seen = new Set<string>();
    await waitFor('the instance to reach Running', async () => {
      const r = (await c.call('DescribeInstances', {
        RegionId: region,
        InstanceIds: JSON.stringify([id]),
      })) as { Instances: { Instance: { Status: string }[] } };
      const status = r.Instances.Instance[0]?.Status ?? '';
      seen.add(status);
      return status === 'Running';
    });
    expect(
      [...seen].filter((s) => s !== 'Running').every((s) => ['Pending', 'Starting'].includes(s)),
    ).toBe(true);
    // DeleteInstance refuses a Running instance without Force; StopInstance, then it goes.
    expect(await refusal(c.call('DeleteInstance', { InstanceId: id }))).toMatchObject({
      code: 'IncorrectInstanceStatus',
    });
    await c.call('StopInstance', { InstanceId: id });
    await waitFor('the instance to stop', async () => {
      const r = (await c.call('DescribeInstances', {
        RegionId: region,
        InstanceIds: JSON.stringify([id]),
      })) as { Instances: { Instance: { Status: string }[] } };
      return r.Instances.Instance[0]?.Status === 'Stopped';
    });
    await c.call('DeleteInstance', { InstanceId: id });
  });

  it('refuses a wrong secret and an unknown action', async () => {
    const style = make();
    const wrong = style.name.startsWith('pop-core')
      ? popCore(style.name.endsWith('POST') ? 'POST' : 'GET', `${secret}x`)
      : sdk(style.name.split(' ')[1] ?? '', `${secret}x`);
    const r = await refusal(wrong.call('DescribeRegions', {}));
    expect(r.code).toBe('SignatureDoesNotMatch');
    expect(r.requestId).toMatch(REQUEST_ID);
    expect(await refusal(style.call('LaunchRocket', {}))).toMatchObject({
      code: 'InvalidAction.NotFound',
    });
  });
});

describe('ECS emulator, RPC requests built by hand', () => {
  /** An RPC request signed the way the reference describes, with parts a test may spoil. */
  function signed(params: Record<string, string>, o: { timestamp?: string; nonce?: string } = {}) {
    const all: Record<string, string> = {
      Format: 'JSON',
      Version: '2014-05-26',
      AccessKeyId: keyId,
      SignatureMethod: 'HMAC-SHA1',
      SignatureVersion: '1.0',
      SignatureNonce: o.nonce ?? randomBytes(8).toString('hex'),
      Timestamp: o.timestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      ...params,
    };
    const enc = (s: string) =>
      encodeURIComponent(s).replace(
        /[!'()*]/g,
        (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
      );
    const canonical = Object.keys(all)
      .sort()
      .map((k) => `${enc(k)}=${enc(all[k] ?? '')}`)
      .join('&');
    const signature = createHmac('sha1', `${secret}&`)
      .update(`GET&${enc('/')}&${enc(canonical)}`)
      .digest('base64');
    return `http://${emu.endpoint}/?${canonical}&Signature=${enc(signature)}`;
  }

  it('refuses a reused nonce, an old timestamp and an unsigned request', async () => {
    const url = signed({ Action: 'DescribeRegions' }, { nonce: 'contract-nonce-1' });
    expect((await fetch(url)).status).toBe(200);
    const replay = await fetch(url);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ Code: 'SignatureNonceUsed' });
    const old = await fetch(
      signed({ Action: 'DescribeRegions' }, { timestamp: '2020-01-01T00:00:00Z' }),
    );
    expect(await old.json()).toMatchObject({ Code: 'InvalidTimeStamp.Expired' });
    const bare = await fetch(`http://${emu.endpoint}/?Action=DescribeRegions&Version=2014-05-26`);
    expect(bare.status).toBe(400);
    expect(await bare.json()).toMatchObject({ Code: 'IncompleteSignature' });
  });
});

describe('ECS emulator, Cloud Assistant with pop-core and the SDK', () => {
  it.each([
    ['pop-core RPC', () => popCore('POST')],
    ['ecs20140526 ACS3', () => sdk('ACS3-HMAC-SHA256')],
  ])('runs a command and reports it as the reference describes (%s)', async (_name, make) => {
    const c = make();
    const region = emu.state.regionId;
    const worker = emu.state.workerInstanceId;
    expect(
      await refusal(
        c.call('RunCommand', {
          RegionId: region,
          Type: 'Shell',
          CommandContent: 'echo hi',
          'InstanceId.1': worker,
        }),
      ),
    ).toMatchObject({ code: 'InvalidCmdType.NotFound' });
    expect(
      await refusal(
        c.call('RunCommand', { RegionId: region, Type: 'RunShellScript', 'InstanceId.1': worker }),
      ),
    ).toMatchObject({ code: 'MissingParameter' });
    const { InvokeId } = (await c.call('RunCommand', {
      RegionId: region,
      Type: 'RunShellScript',
      CommandContent: Buffer.from('echo contract-ok').toString('base64'),
      ContentEncoding: 'Base64',
      'InstanceId.1': worker,
      Name: 'contract',
    })) as { InvokeId: string };
    const statuses = new Set<string>();
    const done = await waitFor('the invocation to finish', async () => {
      const r = (await c.call('DescribeInvocations', {
        RegionId: region,
        InvokeId,
        IncludeOutput: true,
      })) as {
        Invocations: {
          Invocation: {
            InvocationStatus: string;
            CommandContent: string;
            InvokeInstances: {
              InvokeInstance: { InvocationStatus: string; Output?: string; ExitCode?: number }[];
            };
          }[];
        };
      };
      const inv = r.Invocations.Invocation[0];
      statuses.add(inv?.InvocationStatus ?? '');
      return inv?.InvocationStatus === 'Success' ? inv : undefined;
    });
    expect([...statuses].every((st) => ['Pending', 'Running', 'Success'].includes(st))).toBe(true);
    // Output and content come Base64-encoded unless ContentEncoding says PlainText.
    expect(Buffer.from(done.CommandContent, 'base64').toString()).toBe('echo contract-ok');
    const target = done.InvokeInstances.InvokeInstance[0];
    expect(Buffer.from(target?.Output ?? '', 'base64').toString()).toBe('contract-ok\n');
    expect(target?.ExitCode).toBe(0);
    const results = (await c.call('DescribeInvocationResults', {
      RegionId: region,
      InvokeId,
      ContentEncoding: 'PlainText',
    })) as {
      Invocation: {
        InvocationResults: { InvocationResult: { Output: string; InvocationStatus: string }[] };
      };
    };
    expect(results.Invocation.InvocationResults.InvocationResult[0]).toMatchObject({
      Output: 'contract-ok\n',
      InvocationStatus: 'Success',
    });
  });
});
