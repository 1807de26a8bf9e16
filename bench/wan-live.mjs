// bench:wan's Lifeboat run as the product is used: the agent runs all along (trace tracker, 1 s
// interval, fsfreeze at each cut) on a loop device of the initial image, in the agent's namespace,
// over the shaped link, while the day's changes are made on the mounted file system.
// - initial: from the agent's start to the first committed point (gateway's status);
// - incremental: from the end of the changes (after `sync`: the instant rsync and restic would
//   start) to the first committed point whose time is that instant or later, read from the
//   gateway's status (polled every 100 ms by bench/wan-point.mjs, already connected); its bytes
//   are every byte on the link from the start of the changes to that point (during and after),
//   its CPU the agent's over the same span.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bin, cpuTicks, root, stopChild as stop } from './lib.mjs';

const sh = (cmd, a) => execFileSync(cmd, a, { encoding: 'utf8' }).trim();
const TICK = Number(sh('getconf', ['CLK_TCK']));
const cpuSeconds = (pid) => cpuTicks(pid).own / TICK;

/** Waits for the next JSON line on a child's stdout; throws after `ms` or when it exits first. */
function lineReader(child, name, log) {
  let buf = '';
  const lines = [];
  child.stdout.on('data', (c) => {
    buf += c;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  return async (ms) => {
    const until = Date.now() + ms;
    while (lines.length === 0) {
      if (child.exitCode !== null || Date.now() > until)
        throw new Error(`${name}: no committed point within ${ms / 1000} s:\n${log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return lines.shift();
  };
}

/**
 * Returns { initial, incremental } as bench:wan's rows ({ seconds, bytes, cpu }), the incremental
 * with { changeSeconds, bytesDuring, bytesAfter, point }. `ctx`: NS_A, NS_B, IP_B, work, mounted,
 * undo, children, startChild, linkBytes, say, tracefs (a tracefs mount), image (the initial
 * image), changes(dir) (makes the day's changes in the mounted file system at dir).
 */
export async function lifeboatLive(ctx) {
  const { NS_A, NS_B, IP_B, work, mounted, undo, children, startChild, linkBytes } = ctx;
  const volume = join(work, 'volume-live.img');
  copyFileSync(ctx.image, volume);
  const device = sh('losetup', ['--find', '--show', volume]);
  let attached = true;
  const detach = () => {
    if (attached) spawnSync('losetup', ['-d', device]);
    attached = false;
  };
  undo.push(detach);
  const mnt = join(work, 'mnt-live');
  mkdirSync(mnt, { recursive: true });
  sh('mount', [device, mnt]);
  mounted.add(mnt);
  const unmount = () => {
    spawnSync('fsfreeze', ['-u', mnt]);
    if (mounted.delete(mnt)) spawnSync('umount', ['-l', mnt]);
  };
  undo.push(unmount);
  const home = join(work, 'home-live');
  const port = 7445;
  const app = 'live';
  const dr = (a) => sh(process.execPath, [bin, '--home', home, ...a]);
  dr(['init', '--gateway', `${IP_B}:${port}`]);
  dr([
    'app',
    'add',
    app,
    '--volume',
    `disk=${device}`,
    '--fsfreeze',
    mnt,
    ...(ctx.blockSize ?? []),
  ]);
  const env = { ...process.env, DR_LOG_LEVEL: 'warn', DR_TRACEFS: ctx.tracefs };
  const started = [];
  try {
    started.push(
      await startChild(
        NS_B,
        [process.execPath, bin, '--home', home, 'gateway'],
        { DR_LOG_LEVEL: 'warn' },
        /gateway listening/,
        'live gateway',
      ),
    );
    const netA = `--net=/run/netns/${NS_A}`;
    const spawnInA = (argv, stdin) => {
      const child = spawn('nsenter', [netA, ...argv], {
        env,
        stdio: [stdin, 'pipe', 'pipe'],
      });
      children.push(child);
      started.push(child);
      let log = '';
      child.stderr.on('data', (c) => (log = (log + c).slice(-4000)));
      return { child, log: () => log };
    };
    const watch = spawnInA(
      [process.execPath, join(root, 'bench/wan-point.mjs'), home, `${IP_B}:${port}`, app],
      'pipe',
    );
    const nextPoint = lineReader(watch.child, 'wan-point', watch.log);
    const t0 = Date.now();
    const link0 = linkBytes();
    const agent = spawnInA(
      [process.execPath, bin, '--home', home, 'agent', '--app', app, '--tracker', 'trace'],
      'ignore',
    );
    // The agent's log is what says why, when it stops or never commits.
    const agentLog = () => `agent: ${agent.log()}\nwan-point: ${watch.log()}`;
    watch.child.stdin.write(`${t0}\n`);
    const first = await nextPoint(1_200_000).catch((err) => {
      throw new Error(`${err.message}\n${agentLog()}`);
    });
    const initial = {
      seconds: (first.seenAt - t0) / 1000,
      bytes: linkBytes() - link0,
      cpu: cpuSeconds(agent.child.pid),
    };
    ctx.say(`bench:wan: agent running: point ${first.id} after ${initial.seconds.toFixed(1)} s`);
    if (agent.child.exitCode !== null) throw new Error(`the agent exited:\n${agentLog()}`);
    const link1 = linkBytes();
    const cpu1 = cpuSeconds(agent.child.pid);
    const c0 = Date.now();
    ctx.changes(mnt);
    sh('sync', []);
    const tEnd = Date.now();
    const link2 = linkBytes();
    watch.child.stdin.write(`${tEnd}\n`);
    const point = await nextPoint(1_200_000).catch((err) => {
      throw new Error(`${err.message}\n${agentLog()}`);
    });
    const link3 = linkBytes();
    const incremental = {
      seconds: (point.seenAt - tEnd) / 1000,
      bytes: link3 - link1,
      cpu: cpuSeconds(agent.child.pid) - cpu1,
      changeSeconds: (tEnd - c0) / 1000,
      bytesDuring: link2 - link1,
      bytesAfter: link3 - link2,
      point: { id: point.id, afterSync: (point.time - tEnd) / 1000, label: point.label },
    };
    return { initial, incremental };
  } finally {
    for (const child of started.reverse()) await stop(child);
    unmount();
    detach();
    rmSync(home, { recursive: true, force: true });
    rmSync(volume, { force: true });
  }
}
