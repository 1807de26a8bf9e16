/**
 * The ECS emulator checked by hand-built RPC requests (nonce, timestamp, signature) and by Cloud
 * Assistant calls from @alicloud/pop-core and @alicloud/ecs20140526. The request forms of every
 * client are in ecs-contract.test.ts.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  emu,
  keyId,
  popCore,
  refusal,
  sdk,
  secret,
  useEcsContractEmulator,
} from '../helpers/ecs-clients.js';
import { waitFor } from '../helpers/wait-for.js';

useEcsContractEmulator();

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
