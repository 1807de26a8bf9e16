/** Runs a shell script on an ECS instance through Cloud Assistant and waits, bounded, for its end. */
import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeInvocationResultsRequest, RunCommandRequest } from '@alicloud/ecs20140526';
import { DrError } from '../../core/errors.js';
import { type EcsClient, ecsCall, make } from './alicloud-ecs.js';

export interface RunOnInstanceOptions {
  client: EcsClient;
  secret: string;
  regionId: string;
  instanceId: string;
  /** A shell script (RunShellScript), at most 16 KiB. Never put secrets in it: ECS keeps it. */
  script: string;
  /** Name of the command as ECS lists it. */
  name: string;
  /** The command's own timeout on the instance, in seconds (10–86,400); 60 by default. */
  timeoutSec?: number;
  /** How long to wait for a result beyond the command's timeout; 2 minutes by default. */
  graceMs?: number;
  /** First pause between polls, growing by half up to 8 times it; 1 s by default. */
  pollMs?: number;
  signal: AbortSignal;
}

export interface CommandResult {
  exitCode: number;
  output: string;
}

const DONE = new Set([
  'Success',
  'Failed',
  'Timeout',
  'Error',
  'Aborted',
  'Cancelled',
  'Terminated',
  'Invalid',
]);

/** What to do about a Cloud Assistant failure, by its per-instance ErrorCode. */
const remedies: Record<string, string> = {
  ClientNotRunning:
    'start the Cloud Assistant client on the instance (aliyun-service), or install it: https://help.aliyun.com/document_detail/64921.html',
  ClientNotResponse: 'check the instance is up and its Cloud Assistant client can reach ECS',
  InstanceNotRunning: 'start the instance, then run the operation again',
  ExecutionTimeout: 'look at the output; raise the command timeout if the work is just slow',
  ExitCodeNonzero: 'look at the output the command printed',
};

/**
 * RunCommand with the script Base64-encoded, then DescribeInvocationResults until the instance's
 * status is final. Resolves with exit code and output when the command succeeded; otherwise fails
 * with Cloud Assistant's ErrorCode, its info, the output's last line and a remedy.
 */
export async function runOnInstance(o: RunOnInstanceOptions): Promise<CommandResult> {
  const timeoutSec = o.timeoutSec ?? 60;
  const started = await ecsCall('RunCommand', o.secret, () =>
    o.client.runCommand(
      make(RunCommandRequest, {
        regionId: o.regionId,
        type: 'RunShellScript',
        commandContent: Buffer.from(o.script).toString('base64'),
        contentEncoding: 'Base64',
        instanceId: [o.instanceId],
        name: o.name,
        timeout: timeoutSec,
      }),
    ),
  );
  const invokeId = started.body?.invokeId ?? '';
  const deadline = Date.now() + timeoutSec * 1000 + (o.graceMs ?? 120_000);
  const first = o.pollMs ?? 1000;
  let pause = first;
  for (;;) {
    o.signal.throwIfAborted();
    const r = await ecsCall('DescribeInvocationResults', o.secret, () =>
      o.client.describeInvocationResults(
        make(DescribeInvocationResultsRequest, {
          regionId: o.regionId,
          invokeId,
          instanceId: o.instanceId,
          contentEncoding: 'PlainText',
        }),
      ),
    );
    const row = r.body?.invocation?.invocationResults?.invocationResult?.[0];
    const status = row?.invocationStatus ?? '';
    if (DONE.has(status)) {
      const output = row?.output ?? '';
      const exitCode = typeof row?.exitCode === 'number' ? row.exitCode : -1;
      if (status === 'Success') return { exitCode, output };
      const code = row?.errorCode || status;
      const last = output.trim().split('\n').at(-1) ?? '';
      throw new DrError(
        `the command ${o.name} on ${o.instanceId} ended ${status} (${code}${row?.errorInfo ? `: ${row.errorInfo}` : ''})${last ? `; last output: ${last}` : ''}`,
        {
          code: 'provider_failed',
          subject: o.instanceId,
          remedy: remedies[code] ?? 'look at the invocation in the ECS console (Cloud Assistant)',
        },
      );
    }
    if (Date.now() >= deadline) {
      throw new DrError(
        `the command ${o.name} on ${o.instanceId} did not finish in time (last status: ${status || 'none'})`,
        {
          code: 'provider_failed',
          subject: o.instanceId,
          remedy: 'look at the invocation in the ECS console (Cloud Assistant), then retry',
        },
      );
    }
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())), undefined, {
      signal: o.signal,
    });
    pause = Math.min(pause * 1.5, first * 8);
  }
}
