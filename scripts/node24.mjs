#!/usr/bin/env node
// Runs Lifeboat on Node 24 (the image's LTS) beside the Node it supports today: a smoke of `dr`, then the unit tests.
//   node scripts/node24.mjs [vitest paths…]   (default: test/unit; `--smoke-only` skips the tests)
// Node 24 comes from the `node` npm package, installed once into $LIFEBOAT_NODE24_DIR
// (default: the system temp folder), unless LIFEBOAT_NODE24 names a node 24 binary already.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dr = join(root, 'bin', 'dr.js');
const args = process.argv.slice(2);
const smokeOnly = args.includes('--smoke-only');
const paths = args.filter((a) => a !== '--smoke-only');

function fail(why) {
  process.stderr.write(`node24: ${why}\n`);
  process.exit(1);
}

/** A node 24 binary: LIFEBOAT_NODE24, or `npm i node@24` into a scratch folder (once). */
function node24() {
  if (process.env.LIFEBOAT_NODE24) return process.env.LIFEBOAT_NODE24;
  const dir = process.env.LIFEBOAT_NODE24_DIR || join(tmpdir(), 'lifeboat-node24');
  const bin = join(dir, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bin)) {
    process.stdout.write(`node24: installing node@24 into ${dir}\n`);
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', dir, 'node@24'], {
      stdio: 'inherit',
    });
    if (r.status !== 0 || !existsSync(bin))
      fail(`could not install node@24 into ${dir}; set LIFEBOAT_NODE24 to a node 24 binary`);
  }
  return bin;
}

const node = node24();
const version = execFileSync(node, ['--version']).toString().trim();
if (!version.startsWith('v24.')) fail(`${node} is ${version}, not Node 24`);
process.stdout.write(`node24: using ${node} (${version})\n`);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** `dr …` on node 24; fails the smoke unless the exit code is `code` and the output matches. */
function step(what, drArgs, env, code, expect) {
  const r = spawnSync(node, [dr, ...drArgs], { env, encoding: 'utf8', timeout: 120_000 });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== code || (expect && !expect.test(out)))
    fail(`${what}: \`dr ${drArgs.join(' ')}\` exited ${r.status} (wanted ${code}):\n${out}`);
  process.stdout.write(`node24: ok  ${what}\n`);
  return out;
}

async function smoke() {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-node24-smoke-'));
  const home = join(dir, 'home');
  const env = { ...process.env, DR_HOME: home, DR_LOG_LEVEL: 'warn' };
  delete env.REDIS_URL;
  delete env.DR_GATEWAY;
  let gateway;
  try {
    step('dr --version', ['--version'], env, 0, /node 24\./);
    const port = await freePort();
    step('dr init', ['init', '--gateway', `127.0.0.1:${port}`], env, 0, /Created Lifeboat home/);
    const image = join(dir, 'disk.img');
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 7919) data[i] = i % 251;
    writeFileSync(image, data);
    step('dr app add', ['app', 'add', 'web', '--volume', `data=${image}`], env, 0, /Added app web/);
    gateway = spawn(node, [dr, 'gateway'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    gateway.stdout.on('data', (c) => {
      said += c;
    });
    gateway.stderr.on('data', (c) => {
      said += c;
    });
    const deadline = Date.now() + 60_000;
    while (!/gateway listening/.test(said)) {
      if (gateway.exitCode !== null || Date.now() > deadline)
        fail(`dr gateway did not start on node 24:\n${said}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    process.stdout.write('node24: ok  dr gateway listens\n');
    step('dr agent --once', ['agent', '--app', 'web', '--once'], env, 0, /point 1 committed/);
    const out = join(dir, 'restored.img');
    step(
      'dr restore',
      ['restore', 'web', '--point', 'latest', '--allow-fuzzy', '--volume', 'data', '--to', out],
      env,
      0,
      /restored web\/data/,
    );
    if (!readFileSync(out).equals(data)) fail('the restored image differs from the source');
    process.stdout.write('node24: ok  restored image is byte-exact\n');
    step('dr verify --source', ['verify', 'web', '--source'], env, 0, /verify: ok/);
    step('dr status of a typo', ['status', 'wbe'], env, 2, /did you mean web\?/);
  } finally {
    gateway?.kill('SIGTERM');
    if (gateway && gateway.exitCode === null)
      await new Promise((r) => {
        const t = setTimeout(() => gateway.kill('SIGKILL'), 10_000);
        gateway.once('exit', () => {
          clearTimeout(t);
          r();
        });
      });
    rmSync(dir, { recursive: true, force: true });
  }
}

await smoke();
if (!smokeOnly) {
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const r = spawnSync(node, [vitest, 'run', ...(paths.length ? paths : ['test/unit'])], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) fail(`the tests failed on ${version}`);
}
process.stdout.write(`node24: Lifeboat runs on ${version}\n`);
