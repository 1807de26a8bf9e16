import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { createLocalProvider } from '../../../../replicator/providers/local-provider.js';
import type {
  Launched,
  LaunchRequest,
  MaterialisedVolume,
  Provider,
} from '../../../../replicator/providers/provider.js';
import { materialisePoint } from '../../../../replicator/recovery/materialise-point.js';
import {
  dr,
  freePort,
  kek,
  scribble,
  type TestHome,
  testHome,
  writeImage,
} from '../../../helpers/lifeboat-home.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForFile(path: string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.trim()) return text.trim();
    await sleep(25);
  }
  throw new Error(`${path} never appeared`);
}

describe('materialisePoint and the local provider', () => {
  let t: TestHome;
  let recovery: string;
  const providers: Provider[] = [];

  beforeEach(async () => {
    t = await testHome();
    recovery = join(t.dir, 'recovery');
  });

  afterEach(async () => {
    // Every server a test started is stopped here, whatever the test did.
    for (const p of providers.splice(0)) {
      for (const opId of await p.leftovers()) await p.destroy(opId, silentLog);
    }
    await t.cleanup();
  });

  function provider(o: { start?: string; check?: string }): Provider {
    const p = createLocalProvider({ dir: recovery, ...o });
    providers.push(p);
    return p;
  }

  function request(
    opId: string,
    volumes: MaterialisedVolume[],
    mode: 'drill' | 'failover' = 'drill',
  ): LaunchRequest {
    return {
      opId,
      app: 'web',
      mode,
      volumes,
      signal: new AbortController().signal,
      log: silentLog,
    };
  }

  const health = (p: Provider, s: Launched, timeoutMs = 15_000) =>
    p.health(s, { timeoutMs, signal: new AbortController().signal });

  /** App `web` with volumes system (first) and data, one point made by `dr agent --once`. */
  async function twoVolumePoint() {
    const system = join(t.dir, 'system.src');
    const data = join(t.dir, 'data.src');
    await writeImage(system, 4 * 1024 * 1024 + 12345, 1); // not a multiple of the block size
    await writeImage(data, 2 * 1024 * 1024, 2);
    const add = await dr([
      '--home',
      t.home,
      'app',
      'add',
      'web',
      '--volume',
      `system=${system}`,
      '--volume',
      `data=${data}`,
    ]);
    expect(add.code).toBe(0);
    await t.startGateway();
    const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(once.code).toBe(0);
    const pointId = JSON.parse(once.out).point.id as number;
    const client = await t.client();
    return {
      system,
      data,
      at: { system: await readFile(system), data: await readFile(data) },
      client,
      key: await kek(t.home),
      point: await client.point('web', pointId),
    };
  }

  /** Two small images that stand in for a materialised point where the gateway adds nothing. */
  async function images(opId: string): Promise<MaterialisedVolume[]> {
    const opDir = join(recovery, opId);
    await mkdir(opDir, { recursive: true });
    const out: MaterialisedVolume[] = [];
    for (const [i, name] of ['system', 'my-logs'].entries()) {
      const path = join(opDir, `${name}.img`);
      const bytes = await writeImage(path, 256 * 1024, i + 5);
      out.push({ name, path, size: bytes.length });
    }
    return out;
  }

  it('materialises every volume byte-exact, in order, as sparse images, and replaces a failed attempt', async () => {
    const s = await twoVolumePoint();
    // The source moves on after the point: the images must show the point, not the source now.
    await scribble(s.data, 10);
    await scribble(s.system, 10);
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    const dir = join(recovery, 'op-m');
    const progress: string[] = [];
    const vols = await materialisePoint({
      client: s.client,
      kek: s.key,
      app: 'web',
      point: s.point,
      dir,
      onProgress: (v, f) => {
        if (f === 1) progress.push(v);
      },
    });
    expect(vols.map((v) => v.name)).toEqual(['system', 'data']);
    expect(vols.map((v) => v.path)).toEqual([join(dir, 'system.img'), join(dir, 'data.img')]);
    expect(vols.map((v) => v.size)).toEqual([s.at.system.length, s.at.data.length]);
    expect([...new Set(progress)]).toEqual(['system', 'data']);
    expect((await readFile(join(dir, 'system.img'))).equals(s.at.system)).toBe(true);
    expect((await readFile(join(dir, 'data.img'))).equals(s.at.data)).toBe(true);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const st = await stat(join(dir, 'system.img'));
    expect(st.blocks * 512).toBeLessThan(st.size); // zero runs are holes

    // A second attempt of the same operation: a damaged image and a dead attempt's partial file.
    await writeFile(join(dir, 'data.img'), 'half written');
    await writeFile(join(dir, 'system.img.lifeboat-partial-999999'), 'junk');
    await materialisePoint({ client: s.client, kek: s.key, app: 'web', point: s.point, dir });
    expect((await readFile(join(dir, 'data.img'))).equals(s.at.data)).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(['data.img', 'system.img']);
  });

  it('stops between volumes when cancelled', async () => {
    const s = await twoVolumePoint();
    const dir = join(recovery, 'op-c');
    const ac = new AbortController();
    await expect(
      materialisePoint({
        client: s.client,
        kek: s.key,
        app: 'web',
        point: s.point,
        dir,
        signal: ac.signal,
        onProgress: (v, f) => {
          if (v === 'system' && f === 1) ac.abort();
        },
      }),
    ).rejects.toThrow(/abort/i);
    expect(await readdir(dir)).toEqual(['system.img']);
  });

  it('drills: the start command serves the materialised volume, the URL check passes, destroy removes it all', async () => {
    const s = await twoVolumePoint();
    const sourceBefore = sha256(await readFile(s.data));
    const port = await freePort();
    const script = join(t.dir, 'server.mjs');
    await writeFile(
      script,
      `import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
const hash = createHash('sha256').update(readFileSync(process.env.DR_VOLUME_DATA)).digest('hex');
const env = { hash, op: process.env.DR_OP_ID, app: process.env.DR_APP, mode: process.env.DR_MODE, cwd: process.cwd() };
createServer((req, res) => res.end(JSON.stringify(env))).listen(${port}, '127.0.0.1', () => console.log('listening on ${port}'));
`,
    );
    const p = provider({
      start: `exec "${process.execPath}" "${script}"`,
      check: `http://127.0.0.1:${port}/`,
    });
    const opDir = join(recovery, 'op-drill');
    const vols = await materialisePoint({
      client: s.client,
      kek: s.key,
      app: 'web',
      point: s.point,
      dir: opDir,
    });
    expect(await p.leftovers()).toEqual(['op-drill']); // images alone already count

    const server = await p.launch(request('op-drill', vols));
    expect(server.provider).toBe('local');
    expect(server.id).toBe('local:op-drill');
    expect(server.details.log).toBe(join(opDir, 'server.log'));
    const pid = Number(server.details.pid);
    expect(isRunning(pid)).toBe(true);
    const record = JSON.parse(await readFile(join(opDir, 'server.json'), 'utf8'));
    expect(record).toMatchObject({ pid, pgid: pid, opId: 'op-drill', app: 'web', mode: 'drill' });
    expect(record.check).toBe(`http://127.0.0.1:${port}/`);

    const h = await health(p, server);
    expect(h.output).toMatch(/^HTTP 200/);
    expect(h.ok).toBe(true);
    const served = (await (await fetch(`http://127.0.0.1:${port}/`)).json()) as Record<
      string,
      string
    >;
    expect(served.hash).toBe(sha256(await readFile(join(opDir, 'data.img'))));
    expect(served.hash).toBe(sha256(s.at.data));
    expect(served).toMatchObject({ op: 'op-drill', app: 'web', mode: 'drill', cwd: opDir });
    expect(await readFile(join(opDir, 'server.log'), 'utf8')).toContain(`listening on ${port}`);
    expect(sha256(await readFile(s.data))).toBe(sourceBefore); // the drill left the source alone

    const removed = await p.destroy('op-drill', silentLog);
    expect(removed).toEqual([`process group ${pid}`, opDir]);
    expect(isRunning(pid)).toBe(false);
    await expect(stat(opDir)).rejects.toThrow(/ENOENT/);
    expect(await p.leftovers()).toEqual([]);
    expect(await p.destroy('op-drill', silentLog)).toEqual([]);
    expect((await health(p, server)).ok).toBe(false);
  });

  it('passes a command check that finds the volumes through DR_VOLUME_*, and fails once an image is gone', async () => {
    const vols = await images('op-cmd');
    const p = provider({
      check:
        'test -s "$DR_VOLUME_SYSTEM" && test -s "$DR_VOLUME_MY_LOGS" && echo "checked $DR_VOLUME_MY_LOGS for $DR_APP in $DR_MODE"',
    });
    const server = await p.launch(request('op-cmd', vols, 'failover'));
    expect(server.id).toBe('local:op-cmd');
    expect(server.details.pid).toBeUndefined(); // no start command: nothing runs
    const h = await health(p, server);
    expect(h.output).toBe(`checked ${vols[1]?.path} for web in failover`);
    expect(h.ok).toBe(true);
    expect(await p.leftovers()).toEqual(['op-cmd']);

    await rm(vols[1]?.path ?? '');
    const gone = await health(p, server);
    expect(gone.ok).toBe(false);
    expect(gone.output).toContain('my-logs.img');
  });

  it('reports a failing check with its output, and gives up on a running server whose check keeps failing', async () => {
    const vols = await images('op-fail');
    const check = 'echo "last row is 41, expected 42" >&2; exit 3';
    const once = provider({ check });
    const h = await health(once, await once.launch(request('op-fail', vols)));
    expect(h.ok).toBe(false);
    expect(h.output).toContain('last row is 41, expected 42');

    const running = provider({ start: 'exec sleep 300', check });
    const server = await running.launch(request('op-fail', vols));
    const r = await health(running, server, 1500);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/not healthy within 1500 ms; last check: .*last row is 41/s);
    expect(isRunning(Number(server.details.pid))).toBe(true); // a failed check does not stop the server
  });

  it('kills a check that hangs and reports it unhealthy', async () => {
    const vols = await images('op-hang');
    const pidFile = join(t.dir, 'check.pid');
    const p = provider({ check: `echo $$ > "${pidFile}"; exec sleep 300` });
    const h = await health(p, await p.launch(request('op-hang', vols)), 1000);
    expect(h.ok).toBe(false);
    expect(h.output).toContain('killed after 1000 ms');
    expect(isRunning(Number(await waitForFile(pidFile)))).toBe(false);
  });

  it('fails health naming the exit and the log when the start command exits at once', async () => {
    const vols = await images('op-exit');
    const port = await freePort();
    const p = provider({
      start: 'echo "cannot open $DR_VOLUME_SYSTEM: database disk image is malformed" >&2; exit 3',
      check: `http://127.0.0.1:${port}/`,
    });
    const server = await p.launch(request('op-exit', vols));
    const h = await health(p, server);
    expect(h.ok).toBe(false);
    expect(h.output).toContain('exited with code 3');
    expect(h.output).toContain(join(recovery, 'op-exit', 'server.log'));
    expect(h.output).toContain(`cannot open ${vols[0]?.path}: database disk image is malformed`);
  });

  it('destroy ends the whole process group, even one that ignores SIGTERM, and is idempotent', async () => {
    const vols = await images('op-kill');
    const p = provider({ start: `trap '' TERM; sleep 300 & echo $! > child.pid; wait` });
    const server = await p.launch(request('op-kill', vols));
    const leader = Number(server.details.pid);
    const child = Number(await waitForFile(join(recovery, 'op-kill', 'child.pid')));
    expect(isRunning(leader)).toBe(true);
    expect(isRunning(child)).toBe(true);
    expect((await health(p, server)).ok).toBe(true); // running, no check configured
    expect(await p.leftovers()).toEqual(['op-kill']);

    const removed = await p.destroy('op-kill', silentLog);
    expect(removed).toEqual([`process group ${leader}`, join(recovery, 'op-kill')]);
    expect(isRunning(leader)).toBe(false);
    expect(isRunning(child)).toBe(false);
    expect(await p.leftovers()).toEqual([]);
    expect(await p.destroy('op-kill', silentLog)).toEqual([]);
  });

  it('refuses an operation id that would reach outside the recovery directory', async () => {
    const p = provider({});
    await expect(p.destroy('../home', silentLog)).rejects.toThrow(
      /cannot name a recovery directory/,
    );
    await expect(stat(t.home)).resolves.toBeTruthy();
  });
});
