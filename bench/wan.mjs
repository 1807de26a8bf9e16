#!/usr/bin/env node
// Benchmark: replication over a shaped WAN link. Agent and gateway in two network namespaces
// joined by a veth pair shaped with `tc … tbf` (100 Mbit/s, 1 Gbit/s); beside Lifeboat over the
// same link, `rsync -z` over ssh and restic (sftp backend over ssh). Data: an ext4 image of real
// files from /usr, then a day's changes (a SQLite database +80k rows, /usr/share/doc copied in,
// a locale tree removed); and random data. Figures: time and bytes on the link (veth counters,
// so TLS/ssh and TCP/IP overhead count for everyone), initial and incremental, agent CPU.
// Lifeboat runs twice on the realistic disk: as it is used (bench/wan-live.mjs: the agent running
// with the trace tracker while the changes are made; the incremental is timed from the end of
// the changes to the first committed point holding them), and `dr agent --once` (scan tracker)
// started after the changes, the way rsync and restic run.
// Prints figures; never part of `npm test`. Needs root (namespaces, tc, loop mounts).
//   node bench/wan.mjs [--rates 100mbit,1gbit] [--fill-mib 1100] [--random-mib 1024] [--smoke] [--json]
//   --smoke: 100mbit only, a 96 MiB fill, 8k rows, 16 MiB of docs, 32 MiB random.
//   The steady-rate figure (bench/wan-steady.mjs) runs at 100mbit after the rest, fio for
//   --steady-seconds (60; smoke 10, two steps) per rate step; --skip-steady leaves it out, --only-steady runs only it.
//   --steady-log FILE keeps the steady agent's info log there (each point's cycle split);
//   --steady-block-size (16KiB) is the fio volume's block size; --block-size SIZE sets the
//   realistic and random volumes' (dr's default, 64 KiB, without it).
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, root, say } from './lib.mjs';
import { wanImages } from './wan-images.mjs';
import { wanLink } from './wan-link.mjs';
import { lifeboatLive } from './wan-live.mjs';
import { printResults, printSteady } from './wan-report.mjs';
import { steadyRate, tracefsAt } from './wan-steady.mjs';

const { values: args } = parseArgs({
  options: {
    rates: { type: 'string', default: '100mbit,1gbit' },
    'fill-mib': { type: 'string', default: '1100' },
    'random-mib': { type: 'string', default: '1024' },
    smoke: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'steady-seconds': { type: 'string' },
    'skip-steady': { type: 'boolean', default: false },
    'only-steady': { type: 'boolean', default: false },
    'steady-log': { type: 'string' },
    'steady-block-size': { type: 'string', default: '16KiB' },
    'block-size': { type: 'string' },
  },
});
const SMOKE = args.smoke;
/** `dr app add`'s block size for the realistic and random volumes, when --block-size is given. */
const BLOCK_SIZE = args['block-size'] ? ['--block-size', args['block-size']] : [];
const RATES = SMOKE ? ['100mbit'] : args.rates.split(',').map((r) => r.trim());
const FILL = (SMOKE ? 96 : Number(args['fill-mib'])) * 1024 * 1024;
const IMAGE_MIB = SMOKE ? 256 : 2048;
const ROWS = SMOKE ? 8_000 : 80_000;
const DOC_BYTES = (SMOKE ? 16 : 1 << 20) * 1024 * 1024;
const RANDOM = (SMOKE ? 32 : Number(args['random-mib'])) * 1024 * 1024;

function skip(why) {
  say(`bench:wan: skipped: ${why}`);
  process.exit(2);
}
if (process.getuid?.() !== 0) skip('needs root (network namespaces, tc, loop mounts)');
if (!existsSync(join(root, 'dist/cli/main.js'))) skip('build first (npm run build)');
const missing = [
  ['ip', 'iproute2'],
  ['tc', 'iproute2'],
  ['mkfs.ext4', 'e2fsprogs'],
  ['rsync', 'rsync'],
  ['ssh', 'openssh-client'],
  ['/usr/sbin/sshd', 'openssh-server'],
  ['sqlite3', 'sqlite3'],
  ['restic', 'restic'],
  ['fio', 'fio'],
].filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0);
if (missing.length > 0)
  skip(
    `missing ${missing.map(([c]) => c).join(', ')}. To resolve, run: apt-get install -y ${[...new Set(missing.map(([, p]) => p))].join(' ')}`,
  );

const sh = (cmd, a, opts = {}) => execFileSync(cmd, a, { encoding: 'utf8', ...opts }).trim();
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-wan-'));
const undo = [];
const children = [];

const mounted = new Set();

function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  // A run stopped mid-way may hold a mount inside the work directory: unmount before removing.
  for (const dir of mounted) spawnSync('umount', ['-l', dir]);
  for (const f of undo.reverse()) {
    try {
      f();
    } catch {
      // best effort: the rest still gets cleaned
    }
  }
  try {
    rmSync(work, { recursive: true, force: true });
  } catch (err) {
    say(`bench:wan: could not remove ${work}: ${err.message}`);
  }
}
for (const signal of ['SIGINT', 'SIGTERM'])
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });

const {
  NS_A,
  NS_B,
  IP_B,
  removeStaleNamespaces,
  setupLink,
  shape,
  linkBytes,
  measured,
  startChild,
} = wanLink({ sh, undo, children });

const { mountImage, prepareImages, dayOfChanges } = wanImages({
  sh,
  work,
  mounted,
  imageMiB: IMAGE_MIB,
  fillBytes: FILL,
  rows: ROWS,
  docBytes: DOC_BYTES,
});

function randomImage() {
  const p = join(work, 'random.img');
  const fd = openSync(p, 'w');
  for (let o = 0; o < RANDOM; o += 8 << 20)
    writeSync(fd, randomBytes(Math.min(8 << 20, RANDOM - o)));
  closeSync(fd);
  return p;
}

/** An sshd in namespace B for rsync and restic, with keys made for this run. */
async function startSshd() {
  const dir = join(work, 'ssh');
  mkdirSync(dir, { mode: 0o700 });
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const sftp = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server'].find(
    existsSync,
  );
  writeFileSync(
    join(dir, 'sshd_config'),
    `Port 2222\nListenAddress ${IP_B}\nHostKey ${join(dir, 'host')}\nAuthorizedKeysFile ${join(dir, 'authorized_keys')}\nPermitRootLogin prohibit-password\nStrictModes no\nPidFile ${join(dir, 'sshd.pid')}\nSubsystem sftp ${sftp ?? 'internal-sftp'}\n`,
  );
  mkdirSync('/run/sshd', { recursive: true });
  await startChild(
    NS_B,
    ['/usr/sbin/sshd', '-D', '-e', '-f', join(dir, 'sshd_config')],
    {},
    /Server listening/,
    'sshd',
  );
  // AES-GCM, as the issue's baseline measured; host keys of this run only.
  return `ssh -i ${join(dir, 'client')} -p 2222 -c aes128-gcm@openssh.com -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
}

async function lifeboat(label, images, rate) {
  const home = join(work, `home-${label}-${rate}`);
  const volume = join(work, `volume-${label}.img`);
  const port = 7443;
  const dr = (a) => sh(process.execPath, [bin, '--home', home, ...a]);
  dr(['init', '--gateway', `${IP_B}:${port}`]);
  sh('cp', ['--sparse=always', images[0], volume]);
  dr(['app', 'add', 'wan', '--volume', `disk=${volume}`, ...BLOCK_SIZE]);
  const gateway = await startChild(
    NS_B,
    [process.execPath, bin, '--home', home, 'gateway'],
    { DR_LOG_LEVEL: 'warn' },
    /gateway listening/,
    'gateway',
  );
  try {
    const agent = [
      process.execPath,
      bin,
      '--home',
      home,
      'agent',
      '--app',
      'wan',
      '--once',
      '--json',
    ];
    // The cycle report (--json) says how many blocks went as references to blocks already sent.
    const repeated = (r) => ({ ...r, repeated: JSON.parse(r.stdout).blocksRepeated ?? 0 });
    const initial = repeated(await measured(agent, { DR_LOG_LEVEL: 'warn' }));
    let incremental;
    if (images[1]) {
      sh('cp', ['--sparse=always', images[1], volume]);
      incremental = repeated(await measured(agent, { DR_LOG_LEVEL: 'warn' }));
    }
    return { initial, incremental };
  } finally {
    gateway.kill('SIGTERM');
    await new Promise((r) => (gateway.exitCode !== null ? r() : gateway.once('exit', r)));
    rmSync(home, { recursive: true, force: true });
    rmSync(volume, { force: true });
  }
}

/** rsync -z of the mounted file tree (or the image file itself for random data) over ssh. */
async function rsyncZ(label, images, rate, ssh, tree) {
  const dst = `${join(work, `rsync-${label}-${rate}`)}/`;
  const mnt = join(work, 'src');
  const run = async (image) => {
    if (!tree)
      return measured(['rsync', '-az', '--inplace', '-e', ssh, image, `root@${IP_B}:${dst}`]);
    const umount = mountImage(image, mnt, true);
    try {
      return await measured([
        'rsync',
        '-az',
        '--delete',
        '-e',
        ssh,
        `${mnt}/`,
        `root@${IP_B}:${dst}`,
      ]);
    } finally {
      umount();
    }
  };
  try {
    const initial = await run(images[0]);
    const incremental = images[1] ? await run(images[1]) : undefined;
    return { initial, incremental };
  } finally {
    rmSync(dst, { recursive: true, force: true });
  }
}

/** restic backup (sftp backend over the same ssh) of the mounted tree, or of the image file. */
async function restic(label, images, rate, ssh, tree) {
  const repo = join(work, `restic-${label}-${rate}`);
  const env = {
    RESTIC_PASSWORD: randomBytes(16).toString('hex'),
    RESTIC_CACHE_DIR: join(work, 'restic-cache'),
  };
  const r = [
    'restic',
    '-q',
    '-r',
    `sftp:root@${IP_B}:${repo}`,
    '-o',
    `sftp.command=${ssh} root@${IP_B} -s sftp`,
  ];
  const mnt = join(work, 'src');
  const run = async (image) => {
    if (!tree) return measured([...r, 'backup', image], env);
    const umount = mountImage(image, mnt, true);
    try {
      return await measured([...r, 'backup', mnt], env);
    } finally {
      umount();
    }
  };
  try {
    await measured([...r, 'init'], env);
    const initial = await run(images[0]);
    const incremental = images[1] ? await run(images[1]) : undefined;
    return { initial, incremental };
  } finally {
    rmSync(repo, { recursive: true, force: true });
    rmSync(env.RESTIC_CACHE_DIR, { recursive: true, force: true });
  }
}

const MiB = 1024 * 1024;

async function main() {
  removeStaleNamespaces();
  setupLink();
  const ONLY_STEADY = args['only-steady'];
  say('bench:wan: preparing the ext4 image (real files from /usr) and its day of changes');
  const real = ONLY_STEADY ? { copied: 0, docs: 0 } : prepareImages();
  const random = ONLY_STEADY ? undefined : randomImage();
  const ssh = ONLY_STEADY ? undefined : await startSshd();
  // The running agent's trace tracker reads block tracepoints: without tracefs only --once runs.
  let tracefs;
  let liveSkipped;
  try {
    tracefs = tracefsAt(work, undo, mounted);
  } catch (err) {
    liveSkipped = `no tracefs here (${err.message.split('\n')[0]}); the trace tracker cannot run`;
    say(`bench:wan: ${liveSkipped}: only the --once row is measured`);
  }
  const results = [];
  for (const rate of ONLY_STEADY ? [] : RATES) {
    shape(rate);
    for (const [label, images, tree] of [
      ['realistic', [real.initial, real.changed], true],
      ['random', [random], false],
    ]) {
      let live;
      if (tree && tracefs) {
        say(`bench:wan: ${rate}, ${label}: Lifeboat, agent running while the changes are made`);
        live = await lifeboatLive({
          ...{ NS_A, NS_B, IP_B, work, mounted, undo, children, startChild, linkBytes, say },
          tracefs,
          blockSize: BLOCK_SIZE,
          image: images[0],
          changes: dayOfChanges,
        });
      }
      say(`bench:wan: ${rate}, ${label}: Lifeboat, agent --once after the changes`);
      const lb = await lifeboat(label, images, rate);
      say(`bench:wan: ${rate}, ${label}: rsync -z over ssh`);
      const rs = await rsyncZ(label, images, rate, ssh, tree);
      say(`bench:wan: ${rate}, ${label}: restic (sftp)`);
      const rc = await restic(label, images, rate, ssh, tree);
      results.push({
        ...{ rate, label, lifeboat: lb, live, rsync: rs, restic: rc },
        ...(tree && liveSkipped ? { liveSkipped } : {}),
      });
    }
  }
  let steady;
  if (!args['skip-steady']) {
    shape('100mbit');
    steady = await steadyRate({
      ...{ NS_A, NS_B, IP_B, work, undo, mounted, children, startChild, say, smoke: SMOKE },
      tracefs,
      linkBytes,
      linkBytesPerSec: 100e6 / 8,
      seconds: Number(args['steady-seconds'] ?? (SMOKE ? 10 : 60)),
      agentLog: args['steady-log'],
      blockSize: args['steady-block-size'],
    });
  }
  const meta = {
    date: new Date().toISOString(),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    smoke: SMOKE,
    realisticFilesMiB: Math.round(real.copied / MiB),
    docsMiB: Math.round(real.docs / MiB),
    randomMiB: RANDOM / MiB,
  };
  if (args.json) {
    console.log(JSON.stringify({ meta, results, steady }));
    return;
  }
  if (ONLY_STEADY) console.log(`bench:wan ${meta.date}, load ${meta.loadavg.join(' ')}`);
  else
    console.log(
      `bench:wan ${meta.date}, load ${meta.loadavg.join(' ')}; realistic: ${meta.realisticFilesMiB} MiB of files in a ${IMAGE_MIB} MiB ext4 image, then +${ROWS} rows, +${meta.docsMiB} MiB of docs, locale tree removed; random: ${meta.randomMiB} MiB; block size ${args['block-size'] ?? '64KiB (default)'}`,
    );
  printResults(results);
  if (steady) printSteady(steady, args['steady-block-size']);
}

try {
  await main();
} finally {
  cleanup();
}
