/**
 * ECS Cloud Assistant as the reference describes it: RunCommand starts an invocation on instances
 * (Pending → Running → Success | Failed | Timeout per instance, with ErrorCode such as
 * InstanceNotRunning, ClientNotRunning, ExitCodeNonzero, ExecutionTimeout), DescribeInvocations
 * and DescribeInvocationResults report it, Output in Base64 unless ContentEncoding says PlainText.
 * The "guest" runs the script with the emulator's `guest` runner (a local `sh` by default).
 */
import { spawn } from 'node:child_process';
import { type Action, checkRegion, instance, iso, paged } from './ecs-emulator-query.js';
import { EcsApiError, type EcsState, later, newId } from './ecs-emulator-state.js';

export type InvocationStatus = 'Pending' | 'Running' | 'Success' | 'Failed' | 'Timeout';

export interface EmuInvocationTarget {
  instanceId: string;
  status: InvocationStatus;
  output: string;
  exitCode: number | undefined;
  errorCode: string;
  errorInfo: string;
  startedAt: number;
  finishedAt: number;
}

export interface EmuInvocation {
  invokeId: string;
  commandId: string;
  name: string;
  type: string;
  content: string;
  timeoutSec: number;
  workingDir: string;
  createdAt: number;
  targets: EmuInvocationTarget[];
}

/** Runs a command on an instance's guest; answers its exit code and output. */
export type GuestRunner = (
  instanceId: string,
  script: string,
  o: { timeoutMs: number; workingDir: string },
) => Promise<{ exitCode: number; output: string; timedOut: boolean }>;

/** The default guest: the script runs in a local `sh`, killed at its timeout. */
export const localShell: GuestRunner = (_instanceId, script, { timeoutMs, workingDir }) =>
  new Promise((resolve) => {
    const child = spawn('sh', ['-c', script], {
      cwd: workingDir || undefined,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const add = (b: Buffer) => {
      // Cloud Assistant keeps the first 24 KiB of output.
      if (output.length < 24 * 1024) output += b.toString('utf8');
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code ?? 137, output: output.slice(0, 24 * 1024), timedOut });
    });
  });

const TYPES = ['RunShellScript', 'RunBatScript', 'RunPowerShellScript'];

function finish(t: EmuInvocationTarget, patch: Partial<EmuInvocationTarget>): void {
  Object.assign(t, patch, { finishedAt: Date.now() });
}

export const runCommand: Action = (s, q) => {
  checkRegion(s, q);
  const type = q.required('Type');
  if (!TYPES.includes(type)) {
    throw new EcsApiError(
      403,
      'InvalidCmdType.NotFound',
      'The specified command type does not exist.',
    );
  }
  const raw = q.required('CommandContent');
  const encoding = q.get('ContentEncoding') ?? 'PlainText';
  if (encoding !== 'PlainText' && encoding !== 'Base64') {
    throw new EcsApiError(
      400,
      'InvalidParameter.ContentEncoding',
      'The specified parameter "ContentEncoding" is not valid: use PlainText or Base64.',
    );
  }
  const content = encoding === 'Base64' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (Buffer.byteLength(content) > 16 * 1024) {
    throw new EcsApiError(403, 'CmdContent.ExceedLimit', 'The command content exceeds 16 KB.');
  }
  const ids = q.repeated('InstanceId');
  if (ids.length === 0) q.required('InstanceId.1');
  if (ids.length > 100) {
    throw new EcsApiError(
      403,
      'InstanceIds.ExceedLimit',
      'The number of instance IDs exceeds the upper limit.',
    );
  }
  const name = q.get('Name') ?? '';
  if (name.length > 128) {
    throw new EcsApiError(
      403,
      'CmdName.ExceedLimit',
      'The length of the command name exceeds the upper limit.',
    );
  }
  const timeoutSec = q.int('Timeout', { min: 10, max: 86_400, fallback: 60 });
  const targets = ids.map((id) => {
    instance(s, id); // InvalidInstanceId.NotFound for an unknown id
    return {
      instanceId: id,
      status: 'Pending' as InvocationStatus,
      output: '',
      exitCode: undefined,
      errorCode: '',
      errorInfo: '',
      startedAt: 0,
      finishedAt: 0,
    };
  });
  const inv: EmuInvocation = {
    invokeId: newId('t'),
    commandId: newId('c'),
    name,
    type,
    content,
    timeoutSec,
    workingDir: q.get('WorkingDir') ?? '',
    createdAt: Date.now(),
    targets,
  };
  s.invocations.set(inv.invokeId, inv);
  later(s, s.timings.invokeMs, () => {
    for (const t of inv.targets) start(s, inv, t);
  });
  return { CommandId: inv.commandId, InvokeId: inv.invokeId };
};

function start(s: EcsState, inv: EmuInvocation, t: EmuInvocationTarget): void {
  const i = s.instances.get(t.instanceId);
  if (!i) {
    finish(t, {
      status: 'Failed',
      errorCode: 'InstanceReleased',
      errorInfo: 'the instance was released',
    });
    return;
  }
  if (i.status !== 'Running') {
    finish(t, {
      status: 'Failed',
      errorCode: 'InstanceNotRunning',
      errorInfo: `the instance is ${i.status}`,
    });
    return;
  }
  if (s.assistantOffline.has(t.instanceId)) {
    finish(t, {
      status: 'Failed',
      errorCode: 'ClientNotRunning',
      errorInfo: 'the Cloud Assistant client is not running on the instance',
    });
    return;
  }
  t.status = 'Running';
  t.startedAt = Date.now();
  const runner = s.guest ?? localShell;
  // The command runs in the background; its end shows at the next Describe call.
  s.running.push(
    runner(t.instanceId, inv.content, {
      timeoutMs: inv.timeoutSec * 1000,
      workingDir: inv.workingDir || s.dataDir,
    }).then((r) => {
      if (r.timedOut) {
        finish(t, {
          status: 'Timeout',
          output: r.output,
          errorCode: 'ExecutionTimeout',
          errorInfo: `the command ran past its timeout of ${inv.timeoutSec} s`,
        });
      } else if (r.exitCode !== 0) {
        finish(t, {
          status: 'Failed',
          output: r.output,
          exitCode: r.exitCode,
          errorCode: 'ExitCodeNonzero',
          errorInfo: `the command exited with ${r.exitCode}`,
        });
      } else {
        finish(t, { status: 'Success', output: r.output, exitCode: 0 });
      }
    }),
  );
}

/** The invocation's status over its instances, as DescribeInvocations sums it up. */
function overall(inv: EmuInvocation): string {
  const st = inv.targets.map((t) => t.status);
  if (st.every((x) => x === 'Pending')) return 'Pending';
  if (st.some((x) => x === 'Running' || x === 'Pending')) return 'Running';
  if (st.every((x) => x === 'Success')) return 'Success';
  if (st.every((x) => x !== 'Success')) return 'Failed';
  return 'PartialFailed';
}

function encodeOutput(text: string, encoding: string): string {
  return encoding === 'PlainText' ? text : Buffer.from(text).toString('base64');
}

function contentEncoding(q: Parameters<Action>[1]): string {
  const e = q.get('ContentEncoding') ?? 'Base64';
  if (e !== 'PlainText' && e !== 'Base64') {
    throw new EcsApiError(400, 'InvalidParameter.ContentEncoding', 'Use PlainText or Base64.');
  }
  return e;
}

export const describeInvocations: Action = (s, q) => {
  checkRegion(s, q);
  const invokeId = q.get('InvokeId');
  const instanceId = q.get('InstanceId');
  const encoding = contentEncoding(q);
  const withOutput = q.bool('IncludeOutput');
  const all = [...s.invocations.values()].filter(
    (inv) =>
      (invokeId === undefined || inv.invokeId === invokeId) &&
      (instanceId === undefined || inv.targets.some((t) => t.instanceId === instanceId)),
  );
  const p = paged(all, q);
  return {
    TotalCount: p.total,
    PageNumber: p.number,
    PageSize: p.size,
    Invocations: {
      Invocation: p.items.map((inv) => ({
        InvokeId: inv.invokeId,
        CommandId: inv.commandId,
        CommandName: inv.name,
        CommandType: inv.type,
        CommandContent: encodeOutput(inv.content, encoding),
        InvocationStatus: overall(inv),
        Timeout: inv.timeoutSec,
        CreationTime: iso(inv.createdAt),
        InvokeInstances: {
          InvokeInstance: inv.targets.map((t) => ({
            InstanceId: t.instanceId,
            InvocationStatus: t.status,
            ...(withOutput ? { Output: encodeOutput(t.output, encoding) } : {}),
            ...(t.exitCode !== undefined ? { ExitCode: t.exitCode } : {}),
            ErrorCode: t.errorCode,
            ErrorInfo: t.errorInfo,
            ...(t.startedAt ? { StartTime: iso(t.startedAt) } : {}),
            ...(t.finishedAt ? { FinishTime: iso(t.finishedAt) } : {}),
          })),
        },
      })),
    },
  };
};

export const describeInvocationResults: Action = (s, q) => {
  checkRegion(s, q);
  const invokeId = q.get('InvokeId');
  const instanceId = q.get('InstanceId');
  const encoding = contentEncoding(q);
  const rows = [...s.invocations.values()]
    .filter((inv) => invokeId === undefined || inv.invokeId === invokeId)
    .flatMap((inv) => inv.targets.map((t) => ({ inv, t })))
    .filter(({ t }) => instanceId === undefined || t.instanceId === instanceId);
  const p = paged(rows, q);
  return {
    Invocation: {
      TotalCount: p.total,
      PageNumber: p.number,
      PageSize: p.size,
      InvocationResults: {
        InvocationResult: p.items.map(({ inv, t }) => ({
          CommandId: inv.commandId,
          InvokeId: inv.invokeId,
          InstanceId: t.instanceId,
          InvocationStatus: t.status,
          Output: encodeOutput(t.output, encoding),
          ...(t.exitCode !== undefined ? { ExitCode: t.exitCode } : {}),
          ErrorCode: t.errorCode,
          ErrorInfo: t.errorInfo,
          ...(t.startedAt ? { StartTime: iso(t.startedAt) } : {}),
          ...(t.finishedAt ? { FinishedTime: iso(t.finishedAt) } : {}),
        })),
      },
    },
  };
};
