// bench:wan's steady-rate figure: the highest fio write rate the shaped link sustains with the
// lag's p99 at most 5 s. bench:rpo's fio loop (random 4 KiB and 64 KiB writes, 16 KiB blocks, the
// trace tracker and fsfreeze) runs on an ext4 loop device in the agent's namespace, its buffers
// compressible like the realistic disk (zstd ~2.2x: fio's buffer_compress_percentage=55, fresh
// buffers every write, so no two blocks repeat); the gateway is in the other namespace. Rates go
// up (half the link, the link, then quarter steps) until one fails; each holds for `seconds`, and
// the agent catches up between. A step holds when the lag's p99 over it is at most 5 s and the
// lag is back under 5 s within two minutes of fio's end.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bin, pct, root, stopChild as stop } from './lib.mjs';

const sh = (cmd, a, opts = {}) => execFileSync(cmd, a, { encoding: 'utf8', ...opts }).trim();
const run = (cmd, a) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => {
      err += c;
    });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.slice(-1000)}`)),
    );
  });
const LAG_P99 = 5;
const FIO_JOB = ['--rw=randwrite', '--bssplit=4k/50:64k/50', '--direct=1', '--ioengine=psync'];
// randrepeat=0: fio seeds its generators afresh each run. By default every run repeats the same
// offsets and the same buffer contents, so a step rewrote what the step before had written, block
// for block, and the agent rightly found nothing changed there (steps after the first measured a
// fraction of their rate: the link use fell to 9-14 % at 1.25x-2x).
const COMPRESSIBLE = ['--buffer_compress_percentage=55', '--refill_buffers', '--randrepeat=0'];

const TICK = Number(sh('getconf', ['CLK_TCK']));
/** CPU seconds (user + system) a process has used; nsenter execs the agent, so its pid is node's. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

/** A tracefs mount for the agent (DR_TRACEFS): /sys/kernel/tracing need not be mounted here. */
export function tracefsAt(work, undo, mounted) {
  const dir = join(work, 'tracefs');
  mkdirSync(dir, { recursive: true });
  sh('mount', ['-t', 'tracefs', 'nodev', dir]);
  mounted.add(dir);
  undo.push(() => {
    if (mounted.delete(dir)) spawnSync('umount', [dir]);
  });
  return dir;
}

/**
 * Runs the probe; returns { linkBytesPerSec, steps: [{ requested, achieved, p99, max, samples, ok }], best }.
 * `ctx`: NS_A, NS_B, IP_B, work, undo (cleanups run last-first), mounted (dirs to unmount on a
 * stop), children (processes to kill on a stop), startChild(ns, argv, env, readyRe, name),
 * linkBytes() (bytes on the link so far, both ways), linkBytesPerSec, seconds, smoke, say;
 * tracefs: a tracefs mount to use (one is mounted under `work` without it).
 */
export async function steadyRate(ctx) {
  const { NS_A, NS_B, IP_B, work, undo, mounted, children, startChild, say } = ctx;
  const image = join(work, 'steady.img');
  sh('truncate', ['-s', ctx.smoke ? '256M' : '1G', image]);
  const device = sh('losetup', ['--find', '--show', image]);
  undo.push(() => sh('losetup', ['-d', device]));
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
  const mount = join(work, 'steady-mnt');
  mkdirSync(mount);
  sh('mount', [device, mount]);
  mounted.add(mount);
  undo.push(() => {
    spawnSync('fsfreeze', ['-u', mount]);
    if (mounted.delete(mount)) spawnSync('umount', ['-l', mount]);
  });
  const file = join(mount, 'fio.dat');
  const size = ctx.smoke ? '96m' : '512m';
  sh('fio', [
    '--name=layout',
    `--filename=${file}`,
    `--size=${size}`,
    '--rw=write',
    '--bs=1m',
    '--direct=1',
    ...COMPRESSIBLE,
    '--output=/dev/null',
  ]);
  const home = join(work, 'home-steady');
  const port = 7444;
  const dr = (a) => sh(process.execPath, [bin, '--home', home, ...a]);
  dr(['init', '--gateway', `${IP_B}:${port}`]);
  dr([
    'app',
    'add',
    'steady',
    '--volume',
    `data=${device}`,
    '--fsfreeze',
    mount,
    '--block-size',
    ctx.blockSize ?? '16KiB',
  ]);
  // --steady-log FILE: the agent's info log (each point's timings) kept there, for finding the limit.
  const env = {
    DR_LOG_LEVEL: ctx.agentLog ? 'info' : 'warn',
    DR_TRACEFS: ctx.tracefs ?? tracefsAt(work, undo, mounted),
  };
  const gateway = await startChild(
    NS_B,
    [process.execPath, bin, '--home', home, 'gateway'],
    env,
    /gateway listening/,
    'steady gateway',
  );
  // Only the network namespace, as bench:wan enters it (see its netnsArgs).
  const netA = `--net=/run/netns/${NS_A}`;
  const agent = spawn(
    'nsenter',
    [
      netA,
      process.execPath,
      bin,
      '--home',
      home,
      'agent',
      '--app',
      'steady',
      '--tracker',
      'trace',
      '--interval',
      '1s',
    ],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(agent);
  let agentLog = '';
  const keep = ctx.agentLog ? createWriteStream(ctx.agentLog) : undefined;
  agent.stderr.on('data', (c) => {
    keep?.write(c);
    agentLog = (agentLog + c).slice(-4000);
  });
  const sampler = spawn(
    'nsenter',
    [netA, process.execPath, join(root, 'bench/wan-lag.mjs'), home, `${IP_B}:${port}`, 'steady'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  children.push(sampler);
  const lags = [];
  let partial = '';
  sampler.stdout.on('data', (c) => {
    partial += c;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      const j = JSON.parse(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      nl = partial.indexOf('\n');
      lags.push(j);
    }
  });
  try {
    /** Waits until the lag has been below `below` s for 3 samples in a row; false after `ms`. */
    const settled = async (below, ms) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        if (agent.exitCode !== null) throw new Error(`steady: the agent exited:\n${agentLog}`);
        const last = lags.slice(-3);
        if (last.length === 3 && last.every((x) => typeof x.lag === 'number' && x.lag < below))
          return true;
        await sleep(500);
      }
      return false;
    };
    say('bench:wan: steady rate: initial sync of the fio volume');
    if (!(await settled(3, 600_000)))
      throw new Error(`steady: the initial sync did not settle:\n${agentLog}`);
    const link = ctx.linkBytesPerSec;
    const steps = [];
    // Half the link, the link, then quarter steps: the figure is read to a quarter of the link.
    // A smoke run takes two steps: the same path in a minute.
    for (const m of ctx.smoke ? [0.5, 1.5] : [0.5, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4]) {
      const requested = Math.round(link * m);
      say(
        `bench:wan: steady rate: fio at ${(requested / 1e6).toFixed(1)} MB/s (${m}x the link) for ${ctx.seconds} s`,
      );
      const t0 = Date.now();
      const link0 = ctx.linkBytes();
      const cpu0 = cpuSeconds(agent.pid);
      const out = join(work, `fio-${m}.json`);
      // Not execFileSync: the lag samples must be read while fio runs.
      await run('fio', [
        '--name=load',
        `--filename=${file}`,
        `--size=${size}`,
        ...FIO_JOB,
        ...COMPRESSIBLE,
        `--rate=${requested}`,
        '--time_based',
        `--runtime=${ctx.seconds}`,
        '--output-format=json',
        `--output=${out}`,
      ]);
      const t1 = Date.now();
      const secs = (t1 - t0) / 1000;
      // Where the limit is: the link's use (both ways) and the agent's CPU over the step.
      const linkUse = (ctx.linkBytes() - link0) / secs / link;
      const agentCpu = (cpuSeconds(agent.pid) - cpu0) / secs;
      const window = lags.flatMap((x) =>
        x.at >= t0 && x.at <= t1 && typeof x.lag === 'number' ? [x.lag] : [],
      );
      const job = JSON.parse(readFileSync(out, 'utf8')).jobs[0];
      const step = {
        multiple: m,
        requested,
        achieved: job.write.bw_bytes,
        p99: pct(window, 99),
        max: Math.max(...window),
        samples: window.length,
        linkUse,
        agentCpu,
      };
      // The lag when fio stops still counts: a backlog that only drains later was not sustained.
      const caughtUp = await settled(LAG_P99, 120_000);
      step.ok = window.length > 0 && step.p99 <= LAG_P99 && caughtUp;
      steps.push(step);
      if (!step.ok) break;
      await settled(3, 120_000);
    }
    const best = steps.filter((s) => s.ok).at(-1);
    return { linkBytesPerSec: link, steps, best };
  } finally {
    sampler.stdin.end();
    await stop(sampler);
    await stop(agent);
    await stop(gateway);
  }
}
