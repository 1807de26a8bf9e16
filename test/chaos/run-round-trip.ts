/** The round trip under fire: failover → writes at the DR site → failback → reprotect, one seeded fault a round. */
import { execFile, spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { FailbackResult, OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { updateConfig } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr } from '../helpers/processes.js';
import { startRedis } from '../helpers/redis-server.js';
import { APP, ChaosRig, RECORDS_FILE } from './chaos-rig.js';
import { seededRandom } from './fault-schedule.js';
import { checkPointRecords, checkSqlite, verifyPoint } from './point-checks.js';
import type { RoundTripReport } from './round-trip-report.js';
import { resentAgainstChanged } from './round-trip-resent.js';
import {
  DB_FILE,
  killQuietly,
  lastAck,
  lastLine,
  undoDrServers,
  writeSiteScripts,
} from './round-trip-site.js';

const run = promisify(execFile);
export const ROUND_TRIP_FAULTS = [
  'worker-kill',
  'gateway-kill',
  'dr-server-kill',
  'agent-kill',
  'redis-restart',
  'partition',
] as const;
export type RoundTripFault = (typeof ROUND_TRIP_FAULTS)[number];
const STEPS = ['failover', 'dr-writes', 'failback', 'reprotect'] as const;
type Step = (typeof STEPS)[number];

export interface RoundTripOptions {
  rounds: number;
  seed: number;
  volumeMiB?: number;
  /** Records per second per volume, at either site. */
  rate?: number;
  /** How long a part may take to come back before the round fails. */
  recoverMs?: number;
  say?: (line: string) => void;
}

/**
 * Runs `rounds` round trips of an app with two ext4 volumes (loop devices) written by the record
 * pair writer, with real processes: Redis (persistent), the gateway, a worker, the agent behind a
 * fault proxy. The fence stops the source writer and unmounts; the DR server mounts the recovered
 * images and writes records there; the unfence mounts and starts the source writer again.
 */
export async function runRoundTrip(o: RoundTripOptions): Promise<RoundTripReport> {
  const started = Date.now();
  const say = o.say ?? (() => undefined);
  // The schedule has its own generator: nothing else draws from it, so a seed replays a run.
  const random = seededRandom(o.seed ^ 0x7217);
  const rate = o.rate ?? 20;
  const recoverMs = o.recoverMs ?? 120_000;
  const report: RoundTripReport = {
    seed: o.seed,
    rounds: o.rounds,
    faults: {},
    recordsAtSource: 0,
    recordsAtDr: 0,
    recordsLost: 0,
    sqliteChecks: 0,
    rowsAtSource: 0,
    rowsAtDr: 0,
    rowsLost: 0,
    bytesResent: 0,
    bytesChanged: 0,
    backMs: [],
    retries: 0,
    failures: [],
    ms: 0,
  };
  const rig = await ChaosRig.create({
    volumeMiB: o.volumeMiB ?? 64,
    storeMiB: 1024,
    rate,
    intervalMs: 500,
    random: seededRandom(o.seed ^ 0x5eed),
    volumes: 'loop',
  });
  const dir = rig.t.dir;
  const scratch = join(dir, 'scratch');
  await mkdir(scratch);
  const [va, vb] = rig.volumes as [(typeof rig.volumes)[0], (typeof rig.volumes)[0]];
  const { fence, unfence, server, files, startWriter, startSqlite, stopWriter } =
    await writeSiteScripts(dir, va, vb, rate);
  const { srcPid, srcOut, drPid, drOut, srcSqlPid, srcSqlOut, drSqlPid, drSqlOut } = files;
  for (const f of [fence, unfence, server]) await chmod(f, 0o700);
  await updateConfig(rig.t.home, (doc) => {
    doc.setIn(['apps', APP, 'fence'], fence);
    doc.setIn(['apps', APP, 'unfence'], unfence);
    doc.setIn(['apps', APP, 'provider'], {
      kind: 'local',
      start: server,
      check: `test -e "$(dirname "$DR_VOLUME_ALPHA")/mb/records.log"`,
      checkTimeout: '60s',
    });
    doc.setIn(['recovery', 'reprotectWait'], `${Math.round(recoverMs / 1000)}s`);
  });
  const fail = (round: number, what: string) => {
    report.failures.push(`round ${round}: ${what}`);
    say(`  FAIL round ${round}: ${what}`);
  };
  let worker: DrProcess | undefined;
  const env = () => ({ ...rig.env, REDIS_URL: rig.redisUrl, DR_LOG_LEVEL: 'silent' });
  /** Records the source writer started this round from (what the last failback brought home). */
  let prev = 0;
  /** Database rows likewise. */
  let prevRows = 0;
  const startWorker = async () => {
    worker = startDr(['worker', '--lock-duration', '5s'], { ...env(), DR_LOG_LEVEL: 'info' });
    if (worker.child.pid) rig.pids.add(worker.child.pid);
    await worker.waitFor(/worker ready/, 60_000);
  };
  const records = async (file: string) =>
    Math.max(0, Math.floor(((await stat(file).catch(() => undefined))?.size ?? 0) / 4096) - 1);
  const consistentAfter = async (t: number) => {
    const end = Date.now() + recoverMs;
    while (Date.now() < end) {
      const p = (await rig.points())?.find((x) => x.label !== 'fuzzy' && Date.parse(x.time) > t);
      if (p) return p;
      await sleep(250);
    }
    return undefined;
  };

  try {
    await mkdir(join(dir, 'redis'), { recursive: true });
    rig.redis = await startRedis({ port: rig.redisPort, persistDir: join(dir, 'redis') });
    await rig.startGateway();
    spawnSync('/bin/sh', [
      '-c',
      `${startWriter(
        join(va.mount as string, RECORDS_FILE),
        join(vb.mount as string, RECORDS_FILE),
        srcPid,
        srcOut,
      )} ${startSqlite(join(va.mount as string, DB_FILE), srcSqlPid, srcSqlOut)}`,
    ]);
    rig.startAgent();
    await startWorker();
    if (!(await consistentAfter(0))) throw new Error('no consistent point after the initial sync');
    say(`round trip: seed ${o.seed}, ${o.rounds} rounds`);
    for (let n = 1; n <= o.rounds; n++) {
      const kind = ROUND_TRIP_FAULTS[
        Math.floor(random() * ROUND_TRIP_FAULTS.length)
      ] as RoundTripFault;
      const okSteps: readonly Step[] =
        kind === 'dr-server-kill' ? ['dr-writes', 'failback'] : STEPS;
      const step = okSteps[Math.floor(random() * okSteps.length)] as Step;
      const delayMs = Math.floor(random() * 2000);
      report.faults[kind] = (report.faults[kind] ?? 0) + 1;
      const t0 = Date.now();
      try {
        await round(kind, step, delayMs);
        say(
          `  round ${n}: ${kind} during ${step} (+${delayMs} ms): ok in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        );
      } catch (err) {
        fail(n, `${kind} during ${step}: ${(err as Error).message}`);
        break; // the app's state is unknown: later rounds would only repeat the failure
      }
    }
  } catch (err) {
    fail(0, (err as Error).message);
  } finally {
    spawnSync('/bin/sh', [
      '-c',
      `${stopWriter(srcPid)}; ${stopWriter(drPid)}; ${stopWriter(srcSqlPid)}; ${stopWriter(drSqlPid)}`,
    ]);
    await worker?.stop();
    // After the last failback nothing of the DR site may be left: no server, mount or loop device.
    const left = await undoDrServers(join(rig.t.home, 'recovery'), server);
    if (report.failures.length === 0) for (const l of left) fail(0, `leaked ${l}`);
    await rig.stop().catch((err: unknown) => fail(0, `stop: ${(err as Error).message}`));
    // Both source file systems, unmounted at the end: fsck-clean.
    for (const v of rig.volumes) {
      spawnSync('umount', [v.mount as string]);
      const r = spawnSync('e2fsck', ['-fn', v.device], { encoding: 'utf8' });
      if (r.status !== 0)
        fail(0, `e2fsck -fn ${v.device} (${v.name}) at the end: ${r.stdout.slice(-400)}`);
    }
    // The database at home, after the last round: intact, every row the source acknowledged.
    if (report.failures.length === 0) {
      try {
        const db = await checkSqlite(va.device, `/${DB_FILE}`, scratch);
        report.sqliteChecks++;
        const acked = await lastAck(srcSqlOut);
        if (db.maxId < acked)
          fail(0, `the database at home ends at row ${db.maxId}; the source acknowledged ${acked}`);
      } catch (err) {
        fail(0, `the database at home at the end: ${(err as Error).message}`);
      }
    }
    await rm(scratch, { recursive: true, force: true });
    await rig.cleanup();
    report.ms = Date.now() - started;
  }
  return report;

  /** Runs `dr VERB APP --wait --json` until it succeeds (a fault may fail one attempt). */
  async function operation<T>(
    verb: 'failover' | 'failback',
    inject?: () => Promise<void>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const p = startDr([verb, APP, '--wait', '--json'], env());
      if (attempt === 1 && inject) await inject();
      const code = await p.exited;
      const out = p.output();
      // The JSON result is the last block starting with `{` on a line of its own (warnings
      // about a Redis that went away may come before it).
      const lines = out.split('\n');
      const from = lines.findLastIndex((l) => l.startsWith('{'));
      const json = from < 0 ? '' : lines.slice(from).join('\n').trim();
      if (code === 0) return JSON.parse(json) as T;
      // A process of someone else's on this shared machine, in a mount namespace made while the
      // source was mounted, holds the device until it ends: failback names it and refuses, and
      // an operator would wait for it (bounded: 12 attempts).
      const foreign = out.includes('in another mount namespace');
      if (attempt >= (foreign ? 12 : 4))
        throw new Error(`${verb} failed ${attempt} times; last: ${out.slice(-600)}`);
      report.retries++;
      if (process.env.CHAOS_DEBUG) {
        const d = spawnSync(
          '/bin/sh',
          [
            '-c',
            `for d in ${rig.volumes.map((v) => v.device).join(' ')}; do mm=$(stat -c '%t:%T' $d); echo "$d $mm"; grep -h " $((0x\${mm%:*})):$((0x\${mm#*:})) " /proc/[0-9]*/mountinfo | sort | uniq -c; ls /sys/block/$(basename $d)/holders; done; mount | grep -E 'lifeboat-test|loop'`,
          ],
          { encoding: 'utf8' },
        );
        say(`DEBUG ${out.slice(-400)}\n${d.stdout}${d.stderr}`);
      }
      await sleep(foreign ? 5000 : 2000);
    }
  }

  async function injectFault(kind: RoundTripFault, delayMs: number): Promise<void> {
    await sleep(delayMs);
    switch (kind) {
      case 'worker-kill':
        await worker?.kill9();
        await startWorker();
        return;
      case 'gateway-kill':
        await rig.killGateway();
        await rig.startGateway();
        return;
      case 'agent-kill':
        await rig.killAgent();
        rig.startAgent();
        return;
      case 'dr-server-kill': {
        // The app at the DR site dies mid-write (kill -9): the record writer, and sqlite3 with
        // its transaction in flight (a hot journal left behind).
        const pid = Number((await readFile(drPid, 'utf8').catch(() => '')).trim());
        if (pid > 0) killQuietly(pid);
        const sql = Number((await readFile(drSqlPid, 'utf8').catch(() => '')).trim());
        if (sql > 0) {
          const kids = await readFile(`/proc/${sql}/task/${sql}/children`, 'utf8').catch(() => '');
          for (const k of kids.trim().split(/\s+/).filter(Boolean)) killQuietly(Number(k));
          killQuietly(sql);
        }
        return;
      }
      case 'redis-restart':
        await rig.redis?.restart(1000);
        return;
      case 'partition':
        rig.proxy.set({ partitioned: true });
        await sleep(3000);
        rig.proxy.set({ partitioned: false });
        return;
    }
  }

  async function round(kind: RoundTripFault, step: Step, delayMs: number): Promise<void> {
    const during = (s: Step) => (step === s ? () => injectFault(kind, delayMs) : undefined);
    // A planned switch: the source writer stops, and a point after that holds all it wrote.
    spawnSync('/bin/sh', ['-c', `${stopWriter(srcPid)}; ${stopWriter(srcSqlPid)}`]);
    const atSource = (await lastLine(srcOut)).split(/\s+/).map(Number);
    const rowsAtSource = await lastAck(srcSqlOut);
    const stoppedAt = Date.now();
    const base = await consistentAfter(stoppedAt + 50);
    if (!base) throw new Error('no consistent point after the source writer stopped');
    report.recordsAtSource += Math.max(0, (atSource[1] ?? 0) - prev);
    report.rowsAtSource += Math.max(0, rowsAtSource - prevRows);
    const linesBefore = rig.agentLines().length;
    const fo = await operation<OperationResult>('failover', during('failover'));
    if (!fo.fence?.fenced) throw new Error(`the source was not fenced: ${fo.fence?.detail}`);
    for (const v of rig.volumes) {
      if ((await readFile('/proc/mounts', 'utf8')).includes(` ${v.mount} `))
        throw new Error(`${v.mount} is still mounted after the fence`);
      await run('e2fsck', ['-fn', v.device]).catch((err: { stdout?: string }) => {
        throw new Error(
          `e2fsck -fn ${v.device} after the fence: ${String(err.stdout).slice(-300)}`,
        );
      });
    }
    const recovered = join(rig.t.home, 'recovery', fo.opId);
    const drA = join(recovered, 'ma', RECORDS_FILE);
    // Writes at the DR site: the records the source had, and more.
    const w0 = await records(drA);
    const inject = during('dr-writes');
    const injected = inject?.();
    const end = Date.now() + recoverMs;
    while (
      (await records(drA)) < w0 + rate * 2 &&
      Date.now() < end &&
      !(kind === 'dr-server-kill' && inject)
    )
      await sleep(200);
    await injected;
    const seenAtDr = await records(drA);
    const fb = await operation<FailbackResult>('failback', during('failback'));
    const doneAt = Date.now();
    // The DR server had its file systems mounted: failback froze it, never just stopped it.
    if (fb.quiesce?.how !== 'frozen' || fb.quiesce.mounts.length !== 2)
      throw new Error(
        `failback did not freeze the DR server's two file systems: ${JSON.stringify(fb.quiesce)}`,
      );
    const drAck = (await lastLine(drOut)).split(/\s+/).map(Number);
    const rowsAtDr = Math.max(await lastAck(drSqlOut), rowsAtSource);
    // The second volume's count: the pair writer writes it last (b <= a at any instant).
    const ackedAtDr = Math.max(drAck[1] ?? 0, seenAtDr - 1, atSource[1] ?? 0);
    report.recordsAtDr += Math.max(0, ackedAtDr - (atSource[1] ?? 0));
    prev = ackedAtDr;
    report.rowsAtDr += Math.max(0, rowsAtDr - rowsAtSource);
    prevRows = rowsAtDr;
    await rm(drOut, { force: true });
    await rm(drSqlOut, { force: true });
    await during('reprotect')?.();
    const back = await consistentAfter(doneAt);
    if (!back) throw new Error(`no consistent point within ${recoverMs / 1000} s of the failback`);
    report.backMs.push(Date.now() - doneAt);
    if (!fb.protection.protected && step !== 'reprotect' && kind !== 'agent-kill')
      throw new Error(`failback did not end protected: ${fb.protection.detail}`);
    // The point after the round trip: clean ext4, records in sequence, every acknowledged one there.
    const r = await checkPointRecords({
      home: rig.t.home,
      app: APP,
      point: back.id,
      volumes: rig.volumes.map((v) => v.name),
      file: `/${RECORDS_FILE}`,
      scratch,
      keep: true,
    });
    const lost = Math.max(0, ackedAtDr - (r.counts[1] ?? 0));
    report.recordsLost += lost;
    if (lost > 0)
      throw new Error(
        `${lost} record(s) acknowledged at the DR site are missing after failback (point ${back.id} holds ${r.counts.join('/')}, the DR site acknowledged ${ackedAtDr})`,
      );
    // The database, home again: intact, every row the DR site acknowledged.
    const home = await checkSqlite(r.images[0] as string, `/${DB_FILE}`, scratch);
    report.sqliteChecks++;
    const rowsLost = Math.max(0, rowsAtDr - home.maxId);
    report.rowsLost += rowsLost;
    if (rowsLost > 0)
      throw new Error(
        `${rowsLost} database row(s) acknowledged at the DR site are missing after failback (point ${back.id} ends at row ${home.maxId}, the DR site acknowledged ${rowsAtDr})`,
      );
    const verified = await verifyPoint(rig.t.home, APP, back.id);
    if (verified) throw new Error(verified);
    await resentAgainstChanged(rig, report, scratch, base, r.images, linesBefore, rowsAtSource);
    for (const img of r.images) await rm(img, { force: true });
  }
}
