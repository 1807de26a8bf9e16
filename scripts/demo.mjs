#!/usr/bin/env node
// `npm run demo`: a first replication, start to finish, on this machine: a
// home, a volume, the gateway, two agent cycles, points, a byte-exact
// restore and a verify. Everything lives in a fresh temp folder, removed at
// the end unless --keep is given.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const keep = process.argv.includes('--keep');
const bin = fileURLToPath(new URL('../bin/dr.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'lifeboat-demo-'));
const home = join(work, 'home');
const image = join(work, 'shop-data.img');
const env = { ...process.env, DR_HOME: home, DR_LOG_LEVEL: 'warn' };
let gateway;

const step = (text) => process.stdout.write(`\n== ${text}\n`);
function dr(...args) {
  process.stdout.write(`$ dr ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [bin, ...args], { env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`dr ${args[0]} exited ${r.status}`);
}
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

try {
  step(`a 64 MiB volume with some data (${image})`);
  const fd = openSync(image, 'w');
  writeSync(fd, Buffer.alloc(64 * 1024 * 1024));
  for (let i = 0; i < 200; i++)
    writeSync(
      fd,
      randomBytes(64 * 1024),
      0,
      64 * 1024,
      Math.floor(Math.random() * 1024) * 64 * 1024,
    );
  closeSync(fd);

  step('a Lifeboat home: config, key encryption key, certificates for mutual TLS');
  dr('init', '--gateway', `127.0.0.1:${await freePort()}`);
  dr(
    'app',
    'add',
    'shop',
    '--volume',
    `data=${image}`,
    '--quiesce-freeze',
    'true',
    '--quiesce-thaw',
    'true',
  );

  step('the DR-site gateway');
  gateway = spawn(process.execPath, [bin, 'gateway'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    gateway.stdout.on('data', (c) => {
      process.stdout.write(c);
      if (String(c).includes('listening')) resolve();
    });
    gateway.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
  });

  step('initial sync: every block that is not zero, compressed and encrypted');
  dr('agent', '--app', 'shop', '--once');
  step('the app writes; the next cycle ships only what changed');
  const w = openSync(image, 'r+');
  for (let i = 0; i < 10; i++)
    writeSync(w, randomBytes(4096), 0, 4096, Math.floor(Math.random() * 16384) * 4096);
  closeSync(w);
  dr('agent', '--app', 'shop', '--once');
  dr('points', 'shop');
  dr('status', 'shop');

  step('restore the latest consistent point and compare it with the volume');
  const out = join(work, 'restored.img');
  dr('restore', 'shop', '--point', 'latest', '--volume', 'data', '--to', out);
  const same = readFileSync(out).equals(readFileSync(image));
  process.stdout.write(same ? 'restored image is byte-identical to the volume\n' : 'MISMATCH\n');
  if (!same) process.exitCode = 1;

  step('verify: every block authenticated, and compared with the live volume by MAC');
  dr('verify', 'shop', '--source');
  step(keep ? `done; everything is in ${work}` : 'done');
} catch (err) {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  gateway?.kill('SIGTERM');
  if (!keep) rmSync(work, { recursive: true, force: true });
}
