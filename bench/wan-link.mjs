// bench:wan's link: two network namespaces joined by a veth pair, shaped with tc, and the
// commands run across it (timed, with their CPU and the bytes on the link).
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The link of this run, named after its pid. `sh` runs a command for its output; each namespace's
 * removal goes onto `undo`, each process started onto `children` (killed at cleanup).
 */
export function wanLink({ sh, undo, children }) {
  const tag = `lbw${process.pid % 100000}`;
  const NS_A = `${tag}a`; // the protected server: agent, rsync and restic clients
  const NS_B = `${tag}b`; // the DR site: gateway, sshd
  const DEV_A = `${tag}va`;
  const DEV_B = `${tag}vb`;
  const octet = 10 + (process.pid % 200);
  const IP_A = `10.${octet}.77.1`;
  const IP_B = `10.${octet}.77.2`;

  /** Namespaces a run killed outright (SIGKILL) left behind: their pid is gone. */
  function removeStaleNamespaces() {
    for (const line of sh('ip', ['netns', 'list']).split('\n')) {
      const m = /^lbw(\d+)[ab]\b/.exec(line);
      if (!m) continue;
      const pid = Number(m[1]);
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (err) {
        alive = err.code === 'EPERM';
      }
      if (!alive) spawnSync('ip', ['netns', 'del', line.split(' ')[0]]);
    }
  }

  function setupLink() {
    sh('ip', ['netns', 'add', NS_A]);
    undo.push(() => sh('ip', ['netns', 'del', NS_A]));
    sh('ip', ['netns', 'add', NS_B]);
    undo.push(() => sh('ip', ['netns', 'del', NS_B]));
    sh('ip', ['link', 'add', DEV_A, 'type', 'veth', 'peer', 'name', DEV_B]);
    sh('ip', ['link', 'set', DEV_A, 'netns', NS_A]);
    sh('ip', ['link', 'set', DEV_B, 'netns', NS_B]);
    sh('ip', ['-n', NS_A, 'addr', 'add', `${IP_A}/24`, 'dev', DEV_A]);
    sh('ip', ['-n', NS_B, 'addr', 'add', `${IP_B}/24`, 'dev', DEV_B]);
    for (const [ns, dev] of [
      [NS_A, DEV_A],
      [NS_B, DEV_B],
    ]) {
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
  }

  /** Shapes both directions: tbf with a burst of ~2 ms of the rate (at least 64 KiB) and 50 ms of queue. */
  function shape(rate) {
    const bits = Number.parseFloat(rate) * (/gbit/i.test(rate) ? 1e9 : 1e6);
    const burst = Math.max(64 * 1024, Math.round(bits / 8 / 500));
    for (const [ns, dev] of [
      [NS_A, DEV_A],
      [NS_B, DEV_B],
    ])
      sh('nsenter', [
        ...netnsArgs(ns),
        'tc',
        'qdisc',
        'replace',
        'dev',
        dev,
        'root',
        'tbf',
        'rate',
        rate,
        'burst',
        String(burst),
        'latency',
        '50ms',
      ]);
  }

  /**
   * Enters only the network namespace. Not `ip netns exec`: that also makes a mount namespace, a copy
   * of every mount there is, and a process kept in it (sshd) then holds other work's file systems
   * mounted after they are unmounted here (a failback's holder check rightly refused them).
   */
  const netnsArgs = (ns) => [`--net=/run/netns/${ns}`];

  /** Bytes both ways on the link so far (the agent side's veth: tx out, rx back). */
  function linkBytes() {
    const stats = JSON.parse(sh('ip', ['-n', NS_A, '-s', '-j', 'link', 'show', DEV_A]))[0].stats64;
    return stats.tx.bytes + stats.rx.bytes;
  }

  /** Runs a command in namespace A, timed, with its CPU (user+sys of it and its children) and the link bytes. */
  async function measured(argv, env = {}) {
    const before = linkBytes();
    const t0 = process.hrtime.bigint();
    const out = await new Promise((resolve, reject) => {
      const child = spawn(
        '/usr/bin/time',
        ['-f', 'LBCPU %U %S', 'nsenter', ...netnsArgs(NS_A), ...argv],
        { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      let o = '';
      let e = '';
      child.stdout.on('data', (c) => (o += c));
      child.stderr.on('data', (c) => (e += c));
      child.on('exit', (code) =>
        code === 0
          ? resolve({ o, e })
          : reject(new Error(`${argv.join(' ')} exited ${code}: ${e.slice(-2000)}`)),
      );
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const m = /LBCPU ([\d.]+) ([\d.]+)/.exec(out.e);
    return {
      seconds,
      bytes: linkBytes() - before,
      cpu: m ? Number(m[1]) + Number(m[2]) : Number.NaN,
      stdout: out.o,
    };
  }

  function startChild(ns, argv, env, ready, name) {
    const child = spawn('nsenter', [...netnsArgs(ns), ...argv], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    return (async () => {
      const until = Date.now() + 60_000;
      while (!ready.test(out)) {
        if (child.exitCode !== null || Date.now() > until)
          throw new Error(`${name}: not ready:\n${out.slice(-2000)}`);
        await sleep(50);
      }
      return child;
    })();
  }

  return {
    NS_A,
    NS_B,
    IP_B,
    removeStaleNamespaces,
    setupLink,
    shape,
    linkBytes,
    measured,
    startChild,
  };
}
