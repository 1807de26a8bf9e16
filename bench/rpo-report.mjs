// bench:rpo's figures as printed: one summary for the trace/scan/rsync run, one for --store s3.
import { pct as percentile } from './lib.mjs';

/** A percentile, NaN when there are no samples (printed as '-'). */
export const pct = (xs, p) => (xs.length === 0 ? Number.NaN : percentile(xs, p));
const f = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');

/** The trace, profiled trace, scan and rsync runs; `profiledSeconds` is the profiled run's length. */
export function printTrackers(result, { blockSize, profiledSeconds }) {
  const { rate: RATE, seconds: SECONDS, trace, scan, rsync } = result;
  const profiled = result.traceProfiled;
  const split = profiled.cpuSplit;
  console.log(
    `RPO under ${RATE}B/s random writes for ${SECONDS} s, ${blockSize} blocks (lag sampled every second)`,
  );
  for (const r of [trace, scan]) {
    console.log(
      `lifeboat ${r.tracker.padEnd(5)} (seen ${r.trackerSeen}): lag p50 ${f(r.lag.p50)} s, p99 ${f(r.lag.p99)} s, max ${f(r.lag.max)} s | freeze p50 ${f(r.freezeMs.p50)} ms, p99 ${f(r.freezeMs.p99)} ms over ${r.freezeMs.cuts} cuts | agent CPU ${f(r.agentCpuPercent)} % of a core (${f(r.agentCpuWithHelpersPercent)} % with its freeze helpers)`,
    );
    const x = r.freezeSplitMs;
    const pp = (k) => `${f(x[k].p50)} / ${f(x[k].p99)} ms`;
    console.log(
      `  ${r.tracker} freeze split, p50 / p99: fsfreeze -f ${pp('enterMs')} (before the freeze), trace marker ${pp('markerMs')}, dirty blocks ${pp('readMs')}, fsfreeze -u ${pp('thawMs')}`,
    );
  }
  const share = (k) => (split ? `${k} ${f(split[k] * profiled.agentCpuPercent)} %` : `${k} -`);
  console.log(
    `  trace agent CPU split (a profiled ${profiledSeconds} s run at ${f(profiled.agentCpuPercent)} % of a core): ${['hashing', 'sealing', 'tracing', 'reading', 'shipping', 'logging', 'gc', 'other'].map(share).join(', ')} (% of a core)`,
  );
  console.log(
    `rsync loop: cycle p50 ${f(rsync.cycle.p50)} s, max ${f(rsync.cycle.max)} s | lag p50 ${f(rsync.lag.p50)} s, p99 ${f(rsync.lag.p99)} s, max ${f(rsync.lag.max)} s`,
  );
  console.log(
    `ratios to rsync (p99 lag): trace ${f(trace.lag.p99 / rsync.lag.p99)}x, scan ${f(scan.lag.p99 / rsync.lag.p99)}x`,
  );
  console.log(
    'targets with trace: p99 lag <= 2 s, max <= 5 s, p99 freeze <= 50 ms, agent CPU <= 25 %',
  );
}

/** The trace agent into the folder store, then into the object store. */
export function printObjectStore(result, { blockSize }) {
  const { rate: RATE, seconds: SECONDS, local, s3: objects } = result;
  console.log(
    `RPO under ${RATE}B/s random writes for ${SECONDS} s, ${blockSize} blocks, trace tracker (lag sampled every second; load ${result.loadavg.join(' ')})`,
  );
  for (const [what, r] of [
    ['folder store', local],
    ['object store (age of the newest point in the bucket)', objects],
  ]) {
    console.log(
      `${what}: lag p50 ${f(r.lag.p50)} s, p99 ${f(r.lag.p99)} s, max ${f(r.lag.max)} s | freeze p99 ${f(r.freezeMs.p99)} ms over ${r.freezeMs.cuts} cuts | agent CPU ${f(r.agentCpuPercent)} % | ${Object.entries(
        r.otherCpuPercent,
      )
        .map(([k, v]) => `${k} ${v} %`)
        .join(', ')}`,
    );
  }
  const u = objects.uploads;
  const pp = (k, div = 1) => `${f(u[k].p50 / div)} / ${f(u[k].p99 / div)}`;
  console.log(
    `object store commits: ${u.commits} | upload ms p50/p99 ${pp('uploadMs')} | segments ms ${pp('segmentMs')} (MiB ${pp('segmentBytes', 2 ** 20)}) | indexes ms ${pp('indexMs')} (KiB ${pp('indexBytes', 1024)}) | catalog ms ${pp('catalogMs')}`,
  );
  console.log(
    `ratio object / folder store (p99 lag): ${f(result.ratioP99)}x | target with the object store: p99 lag <= 2 s`,
  );
}
