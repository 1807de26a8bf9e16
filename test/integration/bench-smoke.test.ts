// Every benchmark in --smoke mode (tiny sizes, the same code path end to end): it must finish and
// print every figure it names. The values are not checked: timing belongs in bench/, not here.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { skipBecause } from '../helpers/skip.js';

const benchDir = fileURLToPath(new URL('../../bench/', import.meta.url));
/** Generous: a smoke run takes seconds, but six engineers share these two cores. */
const BOUND_MS = 300_000;
const running = new Set<ChildProcess>();

/** A number as the benches print it (never "-", which stands for a figure with no samples). */
const N = String.raw`-?\d+(?:\.\d+)?`;
const re = (s: string) => new RegExp(s.replaceAll('N', N));

/** The figures each benchmark names, one pattern per printed figure line. */
const figures: Record<string, RegExp[]> = {
  'replication.mjs': [
    re(
      String.raw`initial sync\s+N s, N MB/s \(agent cycle N s\) \| rsync --inplace N s \| ratio Nx`,
    ),
    re(String.raw`durable copies\s+rsync --inplace && sync N s \| ratio Nx`),
    re(String.raw`link alone\s+TLS 1\.3 pipe of the file, no block work N s \| ratio Nx`),
    re(
      String.raw`incremental \(N %\)\s+N s, N blocks \(agent cycle N s\) \| rsync .* N s \| ratio Nx`,
    ),
    re(String.raw`peak RSS\s+agent N MiB, gateway N MiB`),
  ],
  'scale.mjs': [
    re(
      String.raw`image N GiB: first sync N s \(N MiB sent\), idle rescan N s, agent N MiB, gateway N MiB; holes walk N ms \(N GiB unused\)`,
    ),
    // ext4 on loop devices needs root: without it the bench says so and goes on.
    re(
      String.raw`ext4 N GiB: first sync N s \(N MiB sent\), idle rescan N s, agent N MiB, gateway N MiB; fsmap walk N ms \(N GiB unused\)|ext4 rows skipped: `,
    ),
  ],
  'rpo.mjs': [
    ...['trace', 'scan'].map((t) =>
      re(
        String.raw`lifeboat ${t}\s*\(seen ${t}\): lag p50 N s, p99 N s, max N s \| freeze p50 N ms, p99 N ms over N cuts \| agent CPU N % of a core \(N % with its freeze helpers\)`,
      ),
    ),
    ...['trace', 'scan'].map((t) =>
      re(
        String.raw`${t} freeze split, p50 / p99: fsfreeze -f N / N ms \(before the freeze\), trace marker N / N ms, dirty blocks N / N ms, fsfreeze -u N / N ms`,
      ),
    ),
    re(
      String.raw`trace agent CPU split \(a profiled N s run at N % of a core\): hashing N %, sealing N %, tracing N %, reading N %, shipping N %, logging N %, gc N %, other N % \(% of a core\)`,
    ),
    re(String.raw`rsync loop: cycle p50 N s, max N s \| lag p50 N s, p99 N s, max N s`),
    re(String.raw`ratios to rsync \(p99 lag\): trace Nx, scan Nx`),
  ],
  'rto.mjs': [
    re(
      String.raw`failover --wait to healthy: N s \(materialise N s, launch N s, healthy N s, total in worker N s\)`,
    ),
    re(
      String.raw`failover point: #N \([a-z-]+\), data age N s, N s before the source stopped writing`,
    ),
    re(
      String.raw`failback after N new 64 KiB blocks: expected N blocks \(N new, N the source wrote after the failover point; its writer logged N after the point's instant\), sent N blocks, N MiB of N MiB, pre-copy N s, downtime N s, --wait N s`,
    ),
    re(String.raw`drills under N MiB/s of writes: [1-9]\d*, RTO p50 N s`),
    re(
      String.raw`lag without a drill: p50 N s, max N s \| during drills: p50 N s, max N s \| difference of max N s`,
    ),
  ],
  'chat.mjs': [
    re(String.raw`slash command ack: p50 N ms, p99 N ms, max N ms \(n=N\)`),
    re(String.raw`second approval press -> job started: p50 N ms, max N ms \(n=N\)`),
    re('second approval press ack: p50 N ms, max N ms'),
  ],
  'policy.mjs': [
    re('loaded and validated in N ms'),
    re(String.raw`decision \(facts in, decision out\), N commands: p50 N ms, p99 N ms, max N ms`),
    re('decision CPU time of this process: p50 N ms, p99 N ms'),
    re(
      String.raw`submit \(engine, Redis, audit; --dry-run\), N commands: p50 N ms, p99 N ms, max N ms`,
    ),
  ],
  'write-tally.mjs': [
    re(String.raw`baseline \(parse, dirty bitmap\): N ns per line`),
    re('with the write tally: N ns per line'),
    re('ratio to the baseline: N'),
  ],
  'status.mjs': [
    re(String.raw`status page, 6 h charts:\s+p50 N ms, p99 N ms, N KiB`),
    re(String.raw`status page, 24 h charts:\s+p50 N ms, p99 N ms, N KiB`),
    re(String.raw`/api/status, 6 h:\s+p50 N ms, p99 N ms, N KiB`),
    re(String.raw`/metrics \(steady\):\s+p50 N ms, p99 N ms, N KiB`),
    re(String.raw`/metrics, first scrape \(reads N events\): N ms`),
  ],
  'restore.mjs': [
    re(
      String.raw`full restore of N MiB random: N s median \(best N s\), N MB/s, Nx the target of 500 MB/s`,
    ),
    re(
      String.raw`machine limits, same run: disk direct write N MB/s; AES-256-GCM decrypt N MB/s per core x N cores`,
    ),
    re(String.raw`\| 2 ranges, 0 workers, sealed \| N s \| N \| N s \| N s \| N \|`),
    re(String.raw`\| 2 ranges, 0 workers, tls \| N s \| N \| N s \| N s \| N \|`),
    re(
      String.raw`where it goes, cpu seconds per GiB: fetch \(sealed\) N \(gateway N\), decrypt\+check N, write N \((O_DIRECT|the page cache: no O_DIRECT here)\) against N through the page cache; sum N s over N cores`,
    ),
    re(
      String.raw`start-up in each restore: dr --version N s wall \(N s cpu\), dr points N s \(N s cpu\)`,
    ),
  ],
  'wan.mjs': [
    // The running agent's row, unless the machine has no tracefs (then it says so).
    re(
      String.raw`(\| Lifeboat, agent running \(trace tracker\) \| N s, N MiB, cpu N s \| N s, N MiB, cpu N s \|[\s\S]*agent running: the changes took N s, N MiB on the link during them and N MiB after the sync; point N \([\w-]+, cut N s after the sync\) seen committed N s after the sync[\s\S]*ratios Lifeboat \(agent running\) / rsync -z: bytes N initial, N incremental|Lifeboat, agent running \(trace tracker\): not measured: no tracefs here)`,
    ),
    ...[
      'Lifeboat, agent started after the changes \\(--once, scan tracker\\)',
      'rsync -z over ssh',
      'restic \\(sftp\\)',
    ].map((tool) => re(String.raw`\| ${tool} \| N s, N MiB, cpu N s \| N s, N MiB, cpu N s \|`)),
    re(String.raw`ratios Lifeboat \(--once\) / rsync -z: bytes N initial, N incremental`),
    re(String.raw`Lifeboat \(--once\) sent N blocks as references initial, N incremental`),
    re(
      String.raw`\| N MB/s \(Nx\) \| N MB/s \| N s \| N s \| N \| N % \| N % of a core \| (yes|no) \|`,
    ),
    re(
      String.raw`(highest steady rate with lag p99 <= 5 s: N MB/s, Nx the link|no rate held the lag p99 at 5 s or below)`,
    ),
  ],
  'zstd-dictionary.mjs': [
    re(
      String.raw`level N none: initial N MiB of N \(Nx, N MB/s\), incremental N MiB of N \(Nx, N MB/s\)`,
    ),
    re(
      String.raw`level N raw N KiB, 1 KiB pieces: initial N MiB of N \(Nx, N MB/s\), incremental N MiB of N \(Nx, N MB/s\)`,
    ),
    re(
      String.raw`level N, incremental in frames of up to 4 consecutive blocks: N MiB of N \(N MB/s\)`,
    ),
    re(String.raw`level N, incremental as one frame: N MiB of N \(N MB/s\)`),
    re(
      String.raw`level N, changed blocks holding the SQLite database: N blocks, N MiB plain, N MiB compressed`,
    ),
  ],
  'up.mjs': [
    re(
      String.raw`\| rootless: [^|]+ \| N s \| N s \| N s / N s \| N ms \| N ms \| N s \(N orders\) \| N s \| N s, exit 0 \|`,
    ),
  ],
};

/**
 * The smoke runs that load the machine most (fio at a steady rate, network namespaces with sshd,
 * several volume sizes, dozens of chat rounds) run with `npm run test:bench`, not in `npm test`:
 * beside the rest of the suite on two cores they slowed every other test, and the network
 * namespaces' sshd held other tests' mounts.
 */
const heavy = new Set(['scale.mjs', 'rpo.mjs', 'chat.mjs', 'wan.mjs', 'zstd-dictionary.mjs']);
const all = process.env.LIFEBOAT_BENCH_SMOKE === 'all';
const chosen = Object.entries(figures).filter(([file]) => all || !heavy.has(file));
if (!all)
  console.log(
    `bench-smoke: ${[...heavy].join(', ')} run with \`npm run test:bench\` (LIFEBOAT_BENCH_SMOKE=all), not in npm test`,
  );

/** At most two benchmarks at once: each starts its own gateway, agents and workers. */
let slots = 2;
const queue: Array<() => void> = [];
async function slot<T>(run: () => Promise<T>): Promise<T> {
  if (slots === 0) await new Promise<void>((r) => queue.push(r));
  else slots--;
  try {
    return await run();
  } finally {
    const next = queue.shift();
    if (next) next();
    else slots++;
  }
}

/** Runs one benchmark with --smoke in its own process group; resolves with its exit and output. */
function runSmoke(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${benchDir}${file}`, '--smoke'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own group, so a run past the bound is stopped with all it started
    });
    running.add(child);
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const bound = setTimeout(() => {
      out += `\n(stopped: still running after ${BOUND_MS / 1000} s)`;
      killGroup(child);
    }, BOUND_MS);
    child.on('exit', (code) => {
      clearTimeout(bound);
      running.delete(child);
      resolve({ code, out });
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}

describe.concurrent('benchmarks in --smoke mode', () => {
  afterAll(() => {
    for (const c of running) killGroup(c);
  });

  for (const [file, lines] of chosen) {
    it(
      `${file} completes and prints every figure it names`,
      async (ctx: TestContext) => {
        const { code, out } = await slot(() => runSmoke(file));
        // Exit 2 is a benchmark's "this machine lacks what I need" (root, fio, redis-server…).
        if (code === 2) {
          const reason = out.trim().split('\n').at(-1) ?? 'exit 2';
          skipBecause(ctx, reason);
          return;
        }
        expect(code, out.slice(-3000)).toBe(0);
        for (const line of lines) expect(out, `bench/${file} printed no ${line}`).toMatch(line);
      },
      // Waiting for a slot counts too: every other benchmark may run before this one.
      chosen.length * (BOUND_MS + 30_000),
    );
  }
});
