/** The round trip's app as shell: the record pair and SQLite writers, fence, unfence and the DR server. */
import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ChaosVolume, RECORDS_FILE } from './chaos-rig.js';

const writerScript = fileURLToPath(new URL('../fixtures/record-pair-writer.mjs', import.meta.url));
const sqliteScript = fileURLToPath(new URL('../fixtures/sqlite-writer.mjs', import.meta.url));
/** The SQLite database on the first volume, written at either site all along. */
export const DB_FILE = 'shop.db';
/** The last line of a writer's output: what it had acknowledged when it stopped (or was killed). */
export const lastLine = async (file: string) =>
  (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').at(-1) ?? '';
export const lastAck = async (file: string) =>
  Number(/^ack (\d+)$/.exec(await lastLine(file))?.[1] ?? 0);

/**
 * Writes the fence, unfence and DR server scripts into `dir` for the app on volumes `va` and
 * `vb`, its writers at `rate` records per second; returns their paths, the writers' pid and
 * output files, and the shell lines that start and stop the writers.
 */
export async function writeSiteScripts(
  dir: string,
  va: ChaosVolume,
  vb: ChaosVolume,
  rate: number,
) {
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
  return {
    fence,
    unfence,
    server,
    files: { srcPid, srcOut, drPid, drOut, srcSqlPid, srcSqlOut, drSqlPid, drSqlOut },
    startWriter,
    startSqlite,
    stopWriter,
  };
}

/** kill -9, of a process that may have ended meanwhile. */
export function killQuietly(pid: number): void {
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
export async function undoDrServers(recovery: string, script: string): Promise<string[]> {
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
