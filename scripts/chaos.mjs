#!/usr/bin/env node
// `npm run chaos -- --rounds N --seed S`: the fault-injection run (test/chaos/).
// Checks the options, then runs test/chaos/chaos-run.ts under vitest with them
// in CHAOS_* variables; the run prints each round and a table at the end.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const KINDS = [
  'agent-kill',
  'gateway-kill',
  'writer-restart',
  'redis-restart',
  'jitter',
  'bandwidth',
  'partition',
  'reset',
  'stall',
  'disk-full',
  'agent-kill-stalled',
  'gateway-kill-full',
  'kill-storm',
];
/** With --store s3 only: kill -9 of radosgw or the OSD, a gateway machine lost (its local folder deleted). */
const S3_KINDS = ['rgw-kill', 'osd-kill', 'gateway-machine-loss'];
const usage = `usage: npm run chaos -- [--round-trip] [--store s3] [--rounds N] [--seed S] [--kinds K,K…] [--volume-mib M] [--rate R] [--sample K] [--volumes V] [--json]
  --round-trip    each round is failover → writes at the DR site → failback → reprotect, with one
                  seeded fault (kill -9 of the worker, gateway, DR server or agent, a Redis restart,
                  a partition) at a seeded step; ext4 on loop devices (root)
  --store s3      the gateway writes into a bucket on a Ceph RGW the run starts (scripts/ceph-s3.sh;
                  root and the Debian ceph packages); adds the faults ${S3_KINDS.join(', ')}
  --rounds N      faults to inject, one per round (default 10)
  --seed S        seed of the fault schedule (default: random, printed); the same seed replays the same run
  --kinds K,…     only these faults: ${KINDS.join(', ')} (and with --store s3: ${S3_KINDS.join(', ')})
  --volume-mib M  size of each of the app's two volumes (default: 128, more for long runs)
  --rate R        records per second the writer appends to each volume (default 25)
  --sample K|all  extra points restored and checked per round (default 1; all: every point)
  --volumes V     loop (ext4 on loop devices, needs root), image (raw image files) or auto (default)
  --json          also print the report as JSON
Needs redis-server; loop volumes need root (loop devices, ext4, fsfreeze, tracefs).`;

function die(msg) {
  process.stderr.write(`chaos: ${msg}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '10' },
      seed: { type: 'string' },
      kinds: { type: 'string' },
      'volume-mib': { type: 'string' },
      rate: { type: 'string', default: '25' },
      sample: { type: 'string', default: '1' },
      volumes: { type: 'string', default: 'auto' },
      json: { type: 'boolean', default: false },
      'round-trip': { type: 'boolean', default: false },
      store: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  die(err.message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const whole = (name, v, min) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    die(`--${name} must be a whole number of at least ${min}, not ${JSON.stringify(v)}`);
  return n;
};
const rounds = whole('rounds', values.rounds, 1);
const seed =
  values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : whole('seed', values.seed, 0);
const rate = whole('rate', values.rate, 1);
// Room for every record of the run: about 30 s of writing per round (checks included; a round
// trip's about 60 s), and a fifth more.
const roundSeconds = values['round-trip'] ? 60 : 30;
const needMiB = Math.ceil((rounds * roundSeconds * rate * 4096 * 1.2) / 2 ** 20 / 64) * 64;
const volumeMiB =
  values['volume-mib'] === undefined
    ? Math.max(128, needMiB)
    : whole('volume-mib', values['volume-mib'], 16);
const sample = values.sample === 'all' ? 'all' : whole('sample', values.sample, 0);
if (!['auto', 'loop', 'image'].includes(values.volumes))
  die(`--volumes must be loop, image or auto, not ${JSON.stringify(values.volumes)}`);
if (values.store !== undefined && values.store !== 's3')
  die(`--store must be s3 (or left out for the folder store), not ${JSON.stringify(values.store)}`);
if (values.store && values['round-trip']) die('--store s3 runs the fault rounds, not --round-trip');
const s3 = values.store === 's3';
const known = s3 ? [...KINDS, ...S3_KINDS] : KINDS;
const kinds = values.kinds?.split(',').map((k) => k.trim()) ?? known;
for (const k of kinds) {
  if (!s3 && S3_KINDS.includes(k)) die(`--kinds: ${k} needs --store s3`);
  if (!known.includes(k)) die(`--kinds: unknown fault ${JSON.stringify(k)}`);
}

process.stderr.write(
  `chaos: seed ${seed} (replay: npm run chaos -- ${values['round-trip'] ? '--round-trip ' : ''}${s3 ? '--store s3 ' : ''}--rounds ${rounds} --seed ${seed})\n`,
);
const root = fileURLToPath(new URL('..', import.meta.url));
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
const r = spawnSync(process.execPath, [vitest, 'run', '--config', 'test/chaos/vitest.config.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    CHAOS_ROUNDS: String(rounds),
    CHAOS_SEED: String(seed),
    CHAOS_KINDS: kinds.join(','),
    CHAOS_VOLUME_MIB: String(volumeMiB),
    CHAOS_RATE: String(rate),
    CHAOS_SAMPLE: String(sample),
    CHAOS_VOLUMES: values.volumes,
    ...(values.json ? { CHAOS_JSON: '1' } : {}),
    ...(values['round-trip'] ? { CHAOS_ROUND_TRIP: '1' } : {}),
    ...(s3 ? { CHAOS_STORE: 's3' } : {}),
  },
});
process.exit(r.status ?? 2);
