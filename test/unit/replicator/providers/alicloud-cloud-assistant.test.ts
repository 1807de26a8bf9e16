import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { runOnInstance } from '../../../../replicator/providers/alicloud-cloud-assistant.js';
import { createEcsClient } from '../../../../replicator/providers/alicloud-ecs.js';
import { type EcsEmulator, startEcsEmulator } from '../../../fakes/ecs-emulator.js';

let dir: string;
let emu: EcsEmulator;
let secret: string;
let run: (
  script: string,
  over?: { instanceId?: string; timeoutSec?: number },
) => ReturnType<typeof runOnInstance>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-assistant-'));
  const keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
  secret = randomBytes(22).toString('base64url');
  emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: dir });
  const client = createEcsClient({
    regionId: emu.state.regionId,
    endpoint: emu.endpoint,
    protocol: 'http',
    accessKeyId: keyId,
    accessKeySecret: secret,
  });
  run = (script, over = {}) =>
    runOnInstance({
      client,
      secret,
      regionId: emu.state.regionId,
      instanceId: over.instanceId ?? emu.state.workerInstanceId,
      script,
      name: 'lifeboat-test',
      timeoutSec: over.timeoutSec ?? 30,
      pollMs: 20,
      signal: new AbortController().signal,
    });
});

afterEach(async () => {
  await emu.close();
  await rm(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
}

describe('runOnInstance through Cloud Assistant (emulated)', () => {
  it('runs a script and returns its output once the invocation succeeded', async () => {
    const r = await run('echo "héllo"; echo $((40 + 2))');
    expect(r).toEqual({ exitCode: 0, output: 'héllo\n42\n' });
    const inv = [...emu.state.invocations.values()][0];
    expect(inv).toMatchObject({ type: 'RunShellScript', name: 'lifeboat-test', timeoutSec: 30 });
    const seen = emu.state.requests.map((q) => q.action);
    expect(seen[0]).toBe('RunCommand');
    expect(new Set(seen.slice(1))).toEqual(new Set(['DescribeInvocationResults']));
  });

  it('fails with the exit code, the last output line and a remedy', async () => {
    const err = await failure(run('echo step one; echo disk full >&2; exit 3'));
    expect(isDrError(err, 'provider_failed')).toBe(true);
    expect(err.message).toMatch(
      /^the command lifeboat-test on i-\w+ ended Failed \(ExitCodeNonzero: the command exited with 3\); last output: disk full\. To resolve, look at the output/,
    );
  });

  it('says when the Cloud Assistant client is not running, or the instance is not', async () => {
    emu.state.assistantOffline.add(emu.state.workerInstanceId);
    const offline = await failure(run('true'));
    expect(offline.message).toContain(
      '(ClientNotRunning: the Cloud Assistant client is not running on the instance)',
    );
    expect(offline.message).toContain('start the Cloud Assistant client on the instance');
    const worker = emu.state.instances.get(emu.state.workerInstanceId);
    if (worker) worker.status = 'Stopped';
    const stopped = await failure(run('true'));
    expect(stopped.message).toContain('(InstanceNotRunning: the instance is Stopped)');
  });

  it('reports a command that ran past its timeout, and an unknown instance', async () => {
    emu.state.guest = async () => ({ exitCode: 137, output: 'still copying\n', timedOut: true });
    const slow = await failure(run('sleep 600', { timeoutSec: 10 }));
    expect(slow.message).toContain(
      'ended Timeout (ExecutionTimeout: the command ran past its timeout of 10 s); last output: still copying',
    );
    const unknown = await failure(run('true', { instanceId: 'i-nosuchinstance' }));
    expect(unknown.message).toContain('ECS InvalidInstanceId.NotFound');
  });
});
