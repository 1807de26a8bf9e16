/** The round trip under fire: failover → writes at the DR site → failback → reprotect, one seeded fault a round. */
import { execFile, spawnSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { FailbackResult, OperationResult } from '../../replicator/jobs/recovery-contract.js';
import type { PointInfo } from '../../replicator/transport/wire-types.js';
import { updateConfig } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr } from '../helpers/processes.js';
import { startRedis } from '../helpers/redis-server.js';
import { APP, ChaosRig, RECORDS_FILE } from './chaos-rig.js';
import { seededRandom } from './fault-schedule.js';
import { changedBytes, checkPointRecords, checkSqlite, verifyPoint } from './point-checks.js';
import type { RoundTripReport } from './round-trip-report.js';

const run = promisify(execFile);
const writerScript = fileURLToPath(new URL('../fixtures/record-pair-writer.mjs', import.meta.url));
const sqliteScript = fileURLToPath(new URL('../fixtures/sqlite-writer.mjs', import.meta.url));
/** The SQLite database on the first volume, written at either site all along. */
const DB_FILE = 'shop.db';
/** The last line of a writer's output: what it had acknowledged when it stopped (or was killed). */
const lastLine = async (file: string) =>
  (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').at(-1) ?? '';
const lastAck = async (file: string) => Number(/^ack (\d+)$/.exec(await lastLine(file))?.[1] ?? 0);

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
  const srcPid = join(dir, 'src-writer.pid');
  const srcOut = join(dir, 'src-writer.out');
  const drPid = join(dir, 'dr-writer.pid');
  const drOut = join(dir, 'dr-writer.out');
  const srcSqlPid = join(dir, 'src-sqlite.pid');
  const srcSqlOut = join(dir, 'src-sqlite.out');
  const drSqlPid = join(dir, 'dr-sqlite.pid');
  const drSqlOut = join(dir, 'dr-sqlite.out');
  const sqlRate = Math.max(1, Math.round(rate / 4));
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const startWriter = (a: string, b: string, pidfile: string, out: string) =>
    `${q(process.execPath)} ${q(writerScript)} ${q(a)} ${q(b)} ${rate} --acks --pidfile ${q(pidfile)} > ${q(out)} 2>/dev/null &`;
  const startSqlite = (db: string, pidfile: string, out: string) =>
    `${q(process.execPath)} ${q(sqliteScript)} ${q(db)} ${sqlRate} --pidfile ${q(pidfile)} >> ${q(out)} 2>/dev/null &`;
  const stopWriter = (pidfile: string) =>
    `pid=$(cat ${q(pidfile)} 2>/dev/null); if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then n=0; while kill -0 "$pid" 2>/dev/null; do n=$((n+1)); [ $n -gt 3000 ] && break; sleep 0.01; done; fi; rm -f ${q(pidfile)}`;
  const fence = join(dir, 'fence.sh');
  await writeFile(
    fence,
    // Thaw before unmounting (a file system unmounted frozen stays frozen, holding its device);
    // one that is unmounted but alive is mounted again, thawed and unmounted.
    `#!/bin/sh\n${stopWriter(srcPid)}\n${stopWriter(srcSqlPid)}\nfor pair in ${q(`${va.mount}=${va.device}`)} ${q(`${vb.mount}=${vb.device}`)}; do\n  m=\${pair%=*}; d=\${pair#*=}\n  n=0\n  while mountpoint -q "$m"; do\n    fsfreeze -u "$m" 2>/dev/null\n    umount "$m" 2>/dev/null && break\n    n=$((n+1)); [ $n -gt 100 ] && { umount "$m"; exit 1; }\n    sleep 0.1\n  done\n  if [ -e "/sys/fs/ext4/$(basename "$d")" ]; then mount "$d" "$m" && fsfreeze -u "$m" 2>/dev/null; umount "$m" || exit 1; fi\ndone\nexit 0\n`,
  );
  const unfence = join(dir, 'unfence.sh');
  await writeFile(
    unfence,
    `#!/bin/sh\nmountpoint -q ${q(va.mount as string)} || mount ${q(va.device)} ${q(va.mount as string)} || exit 1\nmountpoint -q ${q(vb.mount as string)} || mount ${q(vb.device)} ${q(vb.mount as string)} || exit 1\n${startWriter(join(va.mount as string, RECORDS_FILE), join(vb.mount as string, RECORDS_FILE), srcPid, srcOut)}\n${startSqlite(join(va.mount as string, DB_FILE), srcSqlPid, srcSqlOut)}\nexit 0\n`,
  );
  // The DR server: both recovered images mounted, the writer going on from their records.
  const server = join(dir, 'dr-server.sh');
  await writeFile(
    server,
    `#!/bin/sh
[ "$DR_MODE" = failover ] || exec sleep infinity
here=$(dirname "$DR_VOLUME_ALPHA")
da=$(losetup --find --show "$DR_VOLUME_ALPHA") || exit 1
db=$(losetup --find --show "$DR_VOLUME_BETA") || { losetup -d "$da"; exit 1; }
mkdir -p "$here/ma" "$here/mb"
mount "$da" "$here/ma" && mount "$db" "$here/mb" || exit 1
stop() { ${stopWriter(drPid)}; ${stopWriter(drSqlPid)}; umount "$here/ma" "$here/mb"; losetup -d "$da" "$db"; exit 0; }
trap stop TERM INT
${startWriter('$here/ma/records.log', '$here/mb/records.log', drPid, drOut).replaceAll("'$here/ma/records.log'", '"$here/ma/records.log"').replaceAll("'$here/mb/records.log'", '"$here/mb/records.log"')}
${startSqlite('$here/ma/shop.db', drSqlPid, drSqlOut).replaceAll("'$here/ma/shop.db'", '"$here/ma/shop.db"')}
while :; do sleep 1 & wait $!; done
`,
  );
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
    await resentAgainstChanged(base, r.images, linesBefore, rowsAtSource);
    for (const img of r.images) await rm(img, { force: true });
  }

  /** The agent's resync after failback sends at most twice what changed since the failover's point. */
  async function resentAgainstChanged(
    base: PointInfo,
    after: string[],
    linesBefore: number,
    rowsAtSource: number,
  ): Promise<void> {
    const lines = rig
      .agentLines()
      .slice(linesBefore)
      .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('resynced by scan'));
    const resent = lines.reduce((s, l) => s + Number(l.bytesChanged ?? 0), 0);
    const b = await checkPointRecords({
      home: rig.t.home,
      app: APP,
      point: base.id,
      volumes: rig.volumes.map((v) => v.name),
      file: `/${RECORDS_FILE}`,
      scratch,
      keep: true,
    });
    // The database the failover started from: intact, every row the source acknowledged.
    const db = await checkSqlite(b.images[0] as string, `/${DB_FILE}`, scratch);
    report.sqliteChecks++;
    if (db.maxId < rowsAtSource)
      throw new Error(
        `the failover's point ${base.id} ends at database row ${db.maxId}; the source acknowledged ${rowsAtSource}`,
      );
    const blockSize = (await rig.t.config()).apps[APP]?.blockSize ?? 65536;
    let changed = 0;
    for (const [i, img] of b.images.entries())
      changed += await changedBytes(img, after[i] as string, blockSize);
    for (const img of b.images) await rm(img, { force: true });
    report.bytesResent += resent;
    report.bytesChanged += changed;
    if (resent > 2 * changed)
      throw new Error(`the agent resent ${resent} bytes, more than twice the ${changed} changed`);
  }
}

/** kill -9, of a process that may have ended meanwhile. */
function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // ESRCH: it ended by itself meanwhile
  }
}

/**
 * A run that failed half-way may leave a DR server (this run's script, found by its path), its
 * mounts and its loop devices: undo them.
 */
async function undoDrServers(recovery: string, script: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => ''); // exited meanwhile
    if (!cmd.includes(script)) continue;
    found.push(`DR server process ${e}`);
    try {
      process.kill(-Number(e), 'SIGTERM'); // its trap stops the writer and unmounts
    } catch {
      // not a group leader, or gone: nothing of ours to stop there
    }
  }
  if (found.length) await sleep(2000);
  for (const line of (await readFile('/proc/mounts', 'utf8')).split('\n')) {
    const target = line.split(' ')[1];
    if (!target?.startsWith(`${recovery}/`)) continue;
    found.push(`mount ${target}`);
    spawnSync('umount', ['-l', target]);
  }
  const attached = spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of attached.split('\n')) {
    const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
    if (!dev || !line.includes(`${recovery}/`)) continue;
    found.push(`loop device ${dev}`);
    spawnSync('losetup', ['-d', dev]);
  }
  return found;
}
