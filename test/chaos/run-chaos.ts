import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChaosReport } from './chaos-report.js';
import { APP, ChaosRig, RECORDS_FILE } from './chaos-rig.js';
import {
  FAULT_KINDS,
  type Fault,
  type FaultKind,
  faultSchedule,
  OBJECT_STORE_FAULTS,
  seededRandom,
} from './fault-schedule.js';
import { injectFault } from './inject-fault.js';
import {
  attachmentsUnder,
  entriesIn,
  keysWithoutTtl,
  leakedLoopDevices,
  leakedProcesses,
  leakedTempFiles,
  leakedTraceInstances,
  leftoverTempFiles,
  newAttachments,
} from './leaks.js';
import { changedBytes, verifyPoint } from './point-checks.js';
import { consistent, PointLedger } from './point-ledger.js';
import { until } from './poll-until.js';
import { replicationStatePublished } from './replication-state.js';

export interface ChaosOptions {
  rounds: number;
  seed: number;
  /** Only these kinds of fault (all by default). */
  kinds?: readonly FaultKind[];
  /** ext4 on loop devices (root) or raw image files (anywhere); see ChaosRigOptions. */
  volumes?: 'loop' | 'image';
  /** `s3`: the gateway writes into a bucket on a Ceph RGW the run starts; adds the object store's faults. */
  store?: 's3';
  volumeMiB?: number;
  storeMiB?: number;
  /** Records per second per volume. */
  rate?: number;
  intervalMs?: number;
  /** Consistent points restored and checked per round besides the one before and the one after the fault. */
  samplePerRound?: number;
  /** How long a part may take to come back before the round fails. */
  recoverMs?: number;
  say?: (line: string) => void;
  /** Runs at the end of each round, before its leak checks (a test plants a leak here). */
  roundEnd?: (round: number, rig: ChaosRig) => Promise<void>;
}

/**
 * The Redis keys without a TTL the run may hold: the replication state the gateway publishes and
 * the app's RPO history (trimmed by age, not expired). Anything else without one is a leak.
 */
const KEPT_KEYS = [/^lifeboat:replication$/, new RegExp(`^lifeboat:rpo:${APP}(:1m|:1h)?$`)];

/**
 * Runs the app under a seeded schedule of faults, one per round, and after
 * each checks what the issue promises: committed points restore with a
 * gap-free record prefix on both volumes, verify passes, no acknowledged
 * point is lost, the agent comes back to continuous replication by itself,
 * a resync sends at most twice what changed, and nothing leaks.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const say = o.say ?? (() => undefined);
  const random = seededRandom(o.seed ^ 0x5eed);
  const mode = o.volumes ?? 'loop';
  // Image files have no file system of their own to fill, and the store shares the test's disk.
  const needLoop: readonly FaultKind[] = ['disk-full', 'gateway-kill-full'];
  const s3 = o.store === 's3';
  const asked: readonly FaultKind[] = o.kinds ?? [
    ...FAULT_KINDS,
    ...(s3 ? OBJECT_STORE_FAULTS : []),
  ];
  const needS3: readonly FaultKind[] = OBJECT_STORE_FAULTS;
  const kinds = asked.filter(
    (k) => (mode === 'loop' || !needLoop.includes(k)) && (s3 || !needS3.includes(k)),
  );
  const skipped = asked.filter((k) => !kinds.includes(k));
  const schedule = faultSchedule(o.seed, o.rounds, kinds);
  const recoverMs = o.recoverMs ?? 120_000;
  const report: ChaosReport = {
    seed: o.seed,
    rounds: o.rounds,
    faults: {},
    pointsChecked: 0,
    pointsCommitted: 0,
    resyncs: {},
    bytesChanged: 0,
    bytesResent: 0,
    returnMs: [],
    lagWhileFaulted: [],
    records: [],
    failures: [],
    ms: 0,
  };
  say(
    `chaos: seed ${o.seed}, ${o.rounds} rounds (replay with --seed ${o.seed} --rounds ${o.rounds})`,
  );
  const rig = await ChaosRig.create({
    volumeMiB: o.volumeMiB ?? 128,
    storeMiB: o.storeMiB ?? 1024,
    rate: o.rate ?? 25,
    intervalMs: o.intervalMs ?? 500,
    random,
    volumes: mode,
    ...(s3 ? { store: 's3' as const } : {}),
  });
  report.volumes = mode;
  if (s3) {
    report.store = 's3';
    report.unacknowledgedGone = 0;
  }
  if (skipped.length) {
    report.skipped = skipped;
    say(
      `chaos: these faults need a file system of their own (loop volumes) or the object store (--store s3) and are left out: ${skipped.join(', ')}`,
    );
  }
  const scratch = join(rig.t.dir, 'scratch');
  await mkdir(scratch);
  // The rig's own loop devices and mounts; a round may add none.
  const attached = await attachmentsUnder(rig.t.dir);
  const fail = (round: number, kind: string, what: string) => {
    const line = `round ${round} (${kind}): ${what}`;
    report.failures.push(line);
    say(`  FAIL ${line}`);
  };

  const ledger = new PointLedger(
    rig,
    report,
    mode === 'loop' ? `/${RECORDS_FILE}` : 'raw',
    scratch,
    fail,
  );
  const points = () => ledger.points();
  const checkPoint = (id: number, keep = false) => ledger.checkPoint(id, keep);

  try {
    await rig.startRedis();
    await rig.startGateway();
    rig.startWriter();
    rig.startAgent();
    const first = await until(async () => (await points())?.find(consistent), recoverMs);
    if (!first)
      throw new Error(
        `no consistent point within ${recoverMs / 1000} s of the start:\n${rig.agent?.output().slice(-2000)}`,
      );
    // The link's pace under the writer's load, for a bandwidth cap below it.
    const up0 = rig.proxy.counters.bytesUp;
    const t0 = Date.now();
    await sleep(3000);
    const wireRate = Math.max(
      1024,
      ((rig.proxy.counters.bytesUp - up0) * 1000) / (Date.now() - t0),
    );
    say(
      `chaos: initial sync done; the agent sends ${(wireRate / 1024).toFixed(0)} KiB/s under the writer's load`,
    );

    for (const fault of schedule) {
      report.faults[fault.kind] = (report.faults[fault.kind] ?? 0) + 1;
      await round(fault, wireRate).catch((err: unknown) =>
        fail(fault.round, fault.kind, (err as Error).message),
      );
    }

    // The end: the writer stops; a point cut after that holds every record it wrote.
    const written = await rig.stopWriter();
    report.records = written;
    const stoppedAt = Date.now();
    // Either a point cut after that, or the agent's word (after that) that nothing changed since
    // its newest point: an agent commits no point for an unchanged disk.
    const last = await until(async () => {
      const pts = (await points())?.filter(consistent);
      const after = pts?.find((p) => Date.parse(p.time) > stoppedAt + 100);
      if (after) return after;
      const c = (await rig.status())?.lastConsistentPoint;
      const quietSince = Date.parse(c?.unchangedAt ?? '');
      return quietSince > stoppedAt + 100 ? pts?.find((p) => p.id === c?.id) : undefined;
    }, recoverMs);
    if (!last) fail(0, 'end', 'no consistent point after the writer stopped');
    else {
      const r = await checkPoint(last.id).catch((err: unknown) => {
        fail(0, 'end', (err as Error).message);
        return undefined;
      });
      if (r && r.counts.join() !== written.join())
        fail(
          0,
          'end',
          `the last point holds ${r.counts.join('/')} records but the writer wrote ${written.join('/')}`,
        );
      const v = await verifyPoint(rig.t.home, APP, last.id);
      if (v) fail(0, 'end', v);
    }
    await ledger.checkAcknowledged(0, 'end');
    report.pointsCommitted = (await points())?.length ?? ledger.seen.size;
  } catch (err) {
    fail(0, 'run', (err as Error).message);
  } finally {
    const { agentExit } = await rig.stop().catch((err: unknown) => {
      fail(0, 'stop', (err as Error).message);
      return { agentExit: undefined };
    });
    if (agentExit !== undefined && agentExit !== 0)
      fail(0, 'stop', `the agent exited ${agentExit} on SIGTERM`);
    const leaks = [
      ...(await until(async () => {
        const l = await leakedProcesses(rig.t.dir, []);
        return l.length ? undefined : l;
      }, 10_000).then((l) => l ?? leakedProcesses(rig.t.dir, []))),
      ...(await leakedTraceInstances(rig.tracefs, rig.pids, [])),
      ...(await leftoverTempFiles(rig.t.dir)),
      ...(await entriesIn(rig.env.TMPDIR as string)),
    ];
    await rm(scratch, { recursive: true, force: true });
    const images = [...rig.volumes.map((v) => v.image), join(rig.t.dir, 'store.img')];
    await rig.rig.cleanup();
    leaks.push(...(await leakedLoopDevices(images)));
    await rig.t.cleanup();
    for (const l of leaks) fail(0, 'leak', l);
    report.ms = Date.now() - started;
  }
  return report;

  async function round(f: Fault, wireRate: number): Promise<void> {
    const { round: n, kind } = f;
    const before = await points();
    // A lost gateway machine may take a point it listed but never acknowledged, and give its id
    // to the next one: the base to measure the resync against is the newest acknowledged point.
    const acked = new Set(
      rig
        .agentLines()
        .filter((l) => l.msg === 'recovery point committed')
        .map((l) => Number(l.point)),
    );
    const p0 = before
      ?.filter((p) => consistent(p) && (kind !== 'gateway-machine-loss' || acked.has(p.id)))
      .at(-1);
    if (!p0) throw new Error('no consistent point before the fault');
    const linesBefore = rig.agentLines().length;
    const gatewayLinesBefore = rig.gatewayLines().length;
    const faultStart = Date.now();
    let active = true;
    const sampler = (async () => {
      while (active) {
        await points();
        report.lagWhileFaulted.push((Date.now() - ledger.newestConsistentAt) / 1000);
        await sleep(250);
      }
    })();
    try {
      await injectFault(rig, f, wireRate);
    } finally {
      active = false;
      await sampler;
    }
    const faultEnd = Date.now();
    // Back to continuous by itself: a consistent point cut after the fault ended.
    const back = await until(async () => {
      const pts = await points();
      return pts?.filter(consistent).find((p) => Date.parse(p.time) >= faultEnd);
    }, recoverMs);
    if (!back) {
      const s = await rig.status();
      const a = rig.agent?.child;
      const gone = a && (a.exitCode !== null || a.signalCode !== null);
      throw new Error(
        `no consistent point within ${recoverMs / 1000} s after the fault (status: ${s?.phase ?? 'no answer'} ${s?.reason ?? ''})${gone ? `; the agent exited ${a.exitCode ?? a.signalCode}: ${JSON.stringify(rig.agent?.output().slice(-3000))}` : ''}`,
      );
    }
    const returnMs = Date.now() - faultEnd;
    report.returnMs.push(returnMs);
    const status = await rig.status();
    if (status?.phase !== 'continuous')
      fail(n, kind, `phase is ${status?.phase} (${status?.reason ?? ''}) after point ${back.id}`);
    await ledger.checkAcknowledged(n, kind);

    // Resync: what was resent against what changed since the last point before the fault.
    const resent = new Map<string, number>();
    for (const line of rig.agentLines().slice(linesBefore)) {
      if (typeof line.msg !== 'string' || !line.msg.startsWith('resynced by scan')) continue;
      const v = String(line.volume);
      resent.set(v, (resent.get(v) ?? 0) + Number(line.bytesChanged));
      const reason = String(line.reason);
      report.resyncs[reason] = (report.resyncs[reason] ?? 0) + 1;
    }
    if (resent.size > 0) {
      // What the agent logged is what `dr status --json` reports as lastResync (the latest one).
      const isResync = (l: Record<string, unknown>) =>
        typeof l.msg === 'string' && l.msg.startsWith('resynced by scan');
      const shown = await until(async () => {
        const r = (await rig.status())?.lastResync;
        const logged = rig.agentLines().filter(isResync).at(-1);
        return r &&
          logged &&
          r.volume === String(logged.volume) &&
          r.bytes === Number(logged.bytesChanged)
          ? r
          : undefined;
      }, 15_000);
      if (!shown) fail(n, kind, "dr status does not report the agent's last resync as lastResync");
    }
    const base =
      resent.size > 0 || !ledger.checked.has(p0.id)
        ? await checkPoint(p0.id, resent.size > 0)
        : undefined;
    if (base && resent.size > 0) {
      const blockSize = (await rig.t.config()).apps[APP]?.blockSize ?? 65536;
      for (const [i, v] of rig.volumes.entries()) {
        const changed = await changedBytes(base.images[i] as string, v.image, blockSize);
        const sent = resent.get(v.name) ?? 0;
        report.bytesChanged += changed;
        report.bytesResent += sent;
        if (sent > 2 * changed)
          fail(
            n,
            kind,
            `volume ${v.name}: the resync sent ${sent} bytes, more than twice the ${changed} bytes changed since point ${p0.id}`,
          );
      }
      for (const img of base.images) await rm(img, { force: true });
    }
    // Points committed during the round: the first after the fault, and a seeded sample of the others.
    // Any consistent point not checked yet (those of this round, and those cut between rounds).
    const during =
      (await points())?.filter(
        (p) => consistent(p) && !ledger.checked.has(p.id) && p.id !== back.id,
      ) ?? [];
    const sample: number[] = [back.id];
    for (let i = 0; i < (o.samplePerRound ?? 1) && during.length > 0; i++) {
      const [pick] = during.splice(Math.floor(random() * during.length), 1);
      if (pick) sample.push(pick.id);
    }
    for (const id of sample) await checkPoint(id);
    const verified = await verifyPoint(rig.t.home, APP, back.id);
    if (verified) fail(n, kind, verified);
    // After Redis comes back the gateway publishes the app's state there again by itself.
    if (kind === 'redis-restart' && !(await replicationStatePublished(rig.redisUrl, 15_000)))
      fail(n, kind, 'the gateway did not publish the replication state to Redis again within 15 s');
    await o.roundEnd?.(n, rig);
    const live = [rig.agent?.child.pid, rig.gateway?.child.pid, rig.writer?.pid].filter(
      (x): x is number => x !== undefined,
    );
    // What this round left behind, named with the round: a leak shows where it happened.
    const leaksNow = async () => [
      ...(await leakedProcesses(rig.t.dir, live)),
      ...(await leakedTraceInstances(rig.tracefs, rig.pids, live)),
      ...(await leakedTempFiles(rig.t.dir, [...live, process.pid])),
      ...(await newAttachments(rig.t.dir, attached)),
      ...(await keysWithoutTtl(rig.redisUrl, KEPT_KEYS).catch((err: unknown) => [
        `Redis keys (cannot list them: ${(err as Error).message})`,
      ])),
    ];
    const clean = await until(async () => ((await leaksNow()).length ? undefined : true), 10_000);
    if (!clean) for (const l of await leaksNow()) fail(n, kind, `leaked ${l}`);
    // What the agent said while it was under fire: evidence that the fault took effect.
    const heard = new Map<string, number>();
    for (const line of rig.agentLines().slice(linesBefore)) {
      if (Number(line.level) < 40) continue;
      const what = `${line.msg}${line.err ? ` (${String(line.err).slice(0, 90)})` : ''}`;
      heard.set(what, (heard.get(what) ?? 0) + 1);
    }
    for (const line of rig.gatewayLines().slice(gatewayLinesBefore)) {
      if (Number(line.level) < 50) continue;
      const what = `gateway: ${line.msg}${line.url ? ` ${line.url}` : ''}${line.err ? ` (${String(line.err).slice(0, 200)})` : ''}`;
      heard.set(what, (heard.get(what) ?? 0) + 1);
    }
    const agentSaid = [...heard].map(([m, c]) => `${c}x ${m}`).join('\n      ');
    say(
      `  round ${n}: ${kind}${f.endWithReset ? ' (ends with a reset)' : ''} ${f.ms} ms; back in ${(returnMs / 1000).toFixed(1)} s at point ${back.id}; ${resent.size ? `resent ${[...resent.values()].join('+')} bytes; ` : ''}checked ${sample.length + 1} points (${Date.now() - faultStart} ms)${agentSaid ? `\n      ${agentSaid}` : ''}`,
    );
  }
}
