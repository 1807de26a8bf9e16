// bench:wan's printed tables: per rate and data set, each tool's initial and incremental (time,
// bytes on the link both ways, client CPU) with the ratios to issue 21's targets; then the
// steady-rate steps.
const MiB = 1024 * 1024;

const row = (name, r) => {
  const c = (x) =>
    x
      ? `${x.seconds.toFixed(1)} s, ${(x.bytes / MiB).toFixed(0)} MiB, cpu ${x.cpu.toFixed(1)} s`
      : '-';
  return `| ${name} | ${c(r.initial)} | ${c(r.incremental)} |`;
};
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '-');
const ratios = (name, lb, r) =>
  `ratios ${name} / rsync -z: bytes ${ratio(lb.initial.bytes, r.rsync.initial.bytes)} initial, ${ratio(lb.incremental?.bytes, r.rsync.incremental?.bytes)} incremental (target <= 1); time ${ratio(lb.initial.seconds, r.rsync.initial.seconds)} initial, ${ratio(lb.incremental?.seconds, r.rsync.incremental?.seconds)} incremental (target <= 0.8 at 100mbit); vs restic time ${ratio(lb.initial.seconds, r.restic.initial.seconds)}, ${ratio(lb.incremental?.seconds, r.restic.incremental?.seconds)} (target <= 1)`;

export const LIVE = 'Lifeboat, agent running (trace tracker)';
export const ONCE = 'Lifeboat, agent started after the changes (--once, scan tracker)';

/** `results`: [{ rate, label, lifeboat, live?, liveSkipped?, rsync, restic }]. */
export function printResults(results) {
  for (const r of results) {
    console.log(`\n${r.rate}, ${r.label} (time, bytes on the link both ways, client CPU)`);
    console.log('| tool | initial | incremental |\n| --- | --- | --- |');
    if (r.live) console.log(row(LIVE, r.live));
    console.log(row(r.lifeboat.incremental ? ONCE : 'Lifeboat (--once)', r.lifeboat));
    console.log(row('rsync -z over ssh', r.rsync));
    console.log(row('restic (sftp)', r.restic));
    if (r.liveSkipped) console.log(`${LIVE}: not measured: ${r.liveSkipped}`);
    const inc = r.live?.incremental;
    if (inc)
      console.log(
        `agent running: the changes took ${inc.changeSeconds.toFixed(1)} s, ${(inc.bytesDuring / MiB).toFixed(0)} MiB on the link during them and ${(inc.bytesAfter / MiB).toFixed(0)} MiB after the sync; point ${inc.point.id} (${inc.point.label}, cut ${inc.point.afterSync.toFixed(1)} s after the sync) seen committed ${inc.seconds.toFixed(1)} s after the sync`,
      );
    console.log(
      `Lifeboat (--once) sent ${r.lifeboat.initial.repeated} blocks as references initial, ${r.lifeboat.incremental?.repeated ?? '-'} incremental`,
    );
    if (r.live) console.log(ratios('Lifeboat (agent running)', r.live, r));
    console.log(ratios('Lifeboat (--once)', r.lifeboat, r));
  }
}

export function printSteady({ linkBytesPerSec: link, steps, best }, blockSize) {
  console.log(
    `\nsteady rate at 100mbit (fio random 4k/64k writes, zstd-compressible ~2.2x, ${blockSize} blocks, trace tracker)`,
  );
  console.log(
    '| fio rate asked | achieved | lag p99 | lag max | samples | link use | agent CPU | holds |\n| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const s of steps)
    console.log(
      `| ${(s.requested / 1e6).toFixed(1)} MB/s (${s.multiple}x) | ${(s.achieved / 1e6).toFixed(1)} MB/s | ${s.samples ? s.p99.toFixed(1) : '-'} s | ${s.samples ? s.max.toFixed(1) : '-'} s | ${s.samples} | ${Math.round(s.linkUse * 100)} % | ${Math.round(s.agentCpu * 100)} % of a core | ${s.ok ? 'yes' : 'no'} |`,
    );
  console.log(
    best
      ? `highest steady rate with lag p99 <= 5 s: ${(best.achieved / 1e6).toFixed(1)} MB/s, ${(best.achieved / link).toFixed(2)}x the link (target >= 1.5x)`
      : 'no rate held the lag p99 at 5 s or below',
  );
}
