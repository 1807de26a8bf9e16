/** The way home from ECS: an agent started on the recovered instance through Cloud Assistant. */
import { StartInstanceRequest, StopInstanceRequest } from '@alicloud/ecs20140526';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { runOnInstance } from './alicloud-cloud-assistant.js';
import { type EcsClient, ecsCall, make } from './alicloud-ecs.js';
import { type EcsResources, OP_TAG } from './alicloud-resources.js';
import { diskSerials } from './find-attached-disk.js';
import type { Launched, WayHome, WayHomeRequest } from './provider.js';

export interface WayHomeOptions {
  client: EcsClient;
  secret: string;
  regionId: string;
  res: EcsResources;
  /** DR_HOME on the recovered instance: the source's, carried on its disks; /etc/lifeboat by default. */
  agentHome?: string;
  /** How `dr` is run on the instance; `dr` by default. */
  agentCommand?: string;
  /** Where the instance's guest lists its disks by serial; /dev/disk/by-id by default. */
  byIdDir?: string;
  /** How long the instance may take to stop or start; 10 minutes by default. */
  instanceTimeoutMs?: number;
  /** First pause between Cloud Assistant polls; 1 s by default. */
  pollMs?: number;
}

/** A word for the shell: single-quoted, so nothing in it is expanded. */
export const shellWord = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** A name the shell can use for a variable: the volume name, upper-cased, `-` as `_`. */
const varName = (volume: string) => `DR_VOLUME_${volume.toUpperCase().replaceAll('-', '_')}`;

/**
 * Cloud Assistant scripts that start, stop and question the agent on the instance, and the
 * StopInstance / StartInstance that fence and restore it. Nothing secret is in a script (ECS
 * keeps them): the agent's keys and certificates are in its DR_HOME on the instance.
 */
export function alicloudWayHome(o: WayHomeOptions): WayHome & {
  stop: (opId: string, log: Logger) => Promise<boolean>;
} {
  const home = o.agentHome ?? '/etc/lifeboat';
  const dr = o.agentCommand ?? 'dr';
  const byId = o.byIdDir ?? '/dev/disk/by-id';
  const timeoutMs = o.instanceTimeoutMs ?? 10 * 60_000;
  const files = (app: string) => ({
    pid: `"$DR_HOME"/way-home-${app}.pid`,
    log: `"$DR_HOME"/way-home-${app}.log`,
  });

  /** The instance's disk of each volume, matched through the snapshot it was made from. */
  async function volumeDisks(req: WayHomeRequest): Promise<{ name: string; serials: string[] }[]> {
    const snapshots = (req.server.details.snapshots ?? '').split(',');
    const disks = (await o.res.disks({ tag: [OP_TAG, req.failoverOpId] })).filter(
      (d) => d.instanceId === req.server.id,
    );
    return req.volumes.map((v, i) => {
      const disk =
        disks.find((d) => d.sourceSnapshotId !== '' && d.sourceSnapshotId === snapshots[i]) ??
        (i === 0 ? disks.find((d) => d.type === 'system') : undefined);
      if (!disk) {
        throw new DrError(
          `the recovered instance ${req.server.id} has no disk for volume ${v.name} of ${req.app}`,
          {
            code: 'provider_failed',
            subject: req.server.id,
            remedy: `check the instance's disks in the ECS console (made from snapshot ${snapshots[i] ?? '?'})`,
          },
        );
      }
      return { name: v.name, serials: diskSerials(disk.id, disk.serial) };
    });
  }

  /** Shell that sets DR_HOME and one variable per volume to its device, found by serial. */
  async function prelude(req: WayHomeRequest): Promise<string> {
    const lines = [
      'set -e',
      `export DR_HOME=${shellWord(home)}`,
      `BYID=${shellWord(byId)}`,
      'find_disk() { for f in "$@"; do if [ -e "$f" ]; then echo "$f"; return 0; fi; done; return 1; }',
    ];
    for (const d of await volumeDisks(req)) {
      const candidates = d.serials.flatMap((s) => [
        `"$BYID"/virtio-${s}`,
        `"$BYID"/nvme-Alibaba_Cloud_Elastic_Block_Storage_${s}`,
      ]);
      lines.push(
        `${varName(d.name)}=$(find_disk ${candidates.join(' ')}) || { echo "no disk with serial ${d.serials[0]} under $BYID (volume ${d.name})"; exit 3; }`,
        `export ${varName(d.name)}`,
      );
    }
    return lines.join('\n');
  }

  /** The agent's arguments: the way home of the app, each volume at its device, at its size. */
  const agentArgs = (req: WayHomeRequest) =>
    [
      'agent',
      '--app',
      req.app,
      '--reverse',
      ...req.volumes.flatMap((v) => [
        '--volume',
        `${v.name}="$${varName(v.name)}"`,
        '--size',
        `${v.name}=${v.size}`,
      ]),
    ].join(' ');

  const run = (req: WayHomeRequest, name: string, script: string, timeoutSec: number) =>
    runOnInstance({
      client: o.client,
      secret: o.secret,
      regionId: o.regionId,
      instanceId: req.server.id,
      script,
      name,
      timeoutSec,
      ...(o.pollMs !== undefined ? { pollMs: o.pollMs } : {}),
      signal: req.signal,
    });

  async function start(req: WayHomeRequest): Promise<string> {
    const f = files(req.app);
    const script = [
      await prelude(req),
      `if [ -f ${f.pid} ] && kill -0 "$(cat ${f.pid})" 2>/dev/null; then echo "the way-home agent already runs: pid $(cat ${f.pid})"; exit 0; fi`,
      `[ -f "$DR_HOME/dr.yaml" ] || { echo "no Lifeboat home at $DR_HOME on this instance (no dr.yaml there)"; exit 7; }`,
      // Its own session, outliving this command; its output goes to a log beside its DR_HOME.
      `DR_LOG_LEVEL=info nohup setsid ${dr} ${agentArgs(req)} >> ${f.log} 2>&1 < /dev/null &`,
      'pid=$!',
      `echo "$pid" > ${f.pid}`,
      // Up to 20 s: an agent that cannot start (no dr, a wrong key, no gateway) says why here.
      'i=0; while [ $i -lt 100 ]; do',
      `  if ! kill -0 "$pid" 2>/dev/null; then echo "the way-home agent exited at once:"; tail -n 5 ${f.log}; rm -f ${f.pid}; exit 6; fi`,
      `  if grep -q '"point"' ${f.log} 2>/dev/null; then break; fi`,
      '  i=$((i+1)); sleep 0.2',
      'done',
      'echo "the way-home agent runs: pid $pid"',
    ].join('\n');
    const r = await run(req, `lifeboat-way-home-${req.app}`, script, 60);
    req.log.info({ instance: req.server.id, output: r.output.trim() }, 'way-home agent started');
    return r.output.trim();
  }

  async function finalCut(req: WayHomeRequest & { fence?: string }): Promise<string> {
    const f = files(req.app);
    const script = [
      await prelude(req),
      `export DR_APP=${shellWord(req.app)} DR_LOG_LEVEL=warn`,
      // The app's own fence, on the copy of the source it runs on: it stops taking writes.
      ...(req.fence
        ? [
            `sh -c ${shellWord(req.fence)} || { echo "the app's fence command failed on the instance"; exit 4; }`,
          ]
        : []),
      `if [ -f ${f.pid} ]; then pid=$(cat ${f.pid}); kill "$pid" 2>/dev/null || true; i=0`,
      `  while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); if [ $i -gt 1200 ]; then echo "the way-home agent $pid did not stop"; exit 5; fi; sleep 0.1; done`,
      `  rm -f ${f.pid}; fi`,
      // One last cut after the writes stopped (with the app's quiesce, as every cut).
      `${dr} ${agentArgs(req)} --once`,
    ].join('\n');
    const r = await run(req, `lifeboat-final-cut-${req.app}`, script, 3600);
    req.log.info({ instance: req.server.id, output: r.output.trim() }, 'final cut taken');
    return r.output.trim();
  }

  async function agentLog(req: WayHomeRequest): Promise<string> {
    const f = files(req.app);
    const r = await run(
      req,
      `lifeboat-way-home-log-${req.app}`,
      [`export DR_HOME=${shellWord(home)}`, `tail -n 20 ${f.log} 2>&1 || true`].join('\n'),
      30,
    );
    return r.output.trim();
  }

  async function instanceOf(opId: string): Promise<Launched['id'] | undefined> {
    return (await o.res.instances({ tag: [OP_TAG, opId] }))[0]?.id;
  }

  /** Fences the recovered instance: StopInstance (the disks stay), until Stopped. */
  async function stop(opId: string, log: Logger): Promise<boolean> {
    const id = await instanceOf(opId);
    if (!id) return false;
    const status = await o.res.instanceStatus(id);
    if (status === 'Stopped') return false;
    await ecsCall('StopInstance', o.secret, () =>
      o.client.stopInstance(make(StopInstanceRequest, { instanceId: id, forceStop: false })),
    );
    await o.res.waitInstance(id, 'Stopped', timeoutMs, new AbortController().signal);
    log.info({ instance: id }, 'recovered instance stopped');
    return true;
  }

  async function restart(opId: string, log: Logger): Promise<void> {
    const id = await instanceOf(opId);
    if (!id)
      throw new DrError(`no instance of ${opId} is left`, {
        code: 'provider_failed',
        subject: opId,
      });
    if ((await o.res.instanceStatus(id)) !== 'Running') {
      await ecsCall('StartInstance', o.secret, () =>
        o.client.startInstance(make(StartInstanceRequest, { instanceId: id })),
      );
      await o.res.waitInstance(id, 'Running', timeoutMs, new AbortController().signal);
    }
    log.info({ instance: id }, 'recovered instance running again');
  }

  return { start, finalCut, agentLog, restart, stop };
}
