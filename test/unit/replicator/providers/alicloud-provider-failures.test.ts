import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DescribeDisksRequest } from '@alicloud/ecs20140526';
import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { createEcsClient, ecsCall, make } from '../../../../replicator/providers/alicloud-ecs.js';
import { createAlicloudProvider } from '../../../../replicator/providers/alicloud-provider.js';
import {
  emu,
  everything,
  failure,
  keyId,
  launchRequest,
  log,
  options,
  resources,
  secret,
  useEcsRig,
} from '../../../helpers/ecs-rig.js';

useEcsRig();

// Launching, attaching and health checks are in alicloud-provider.test.ts (the same rig).
describe('alicloud provider against the ECS emulator', () => {
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
