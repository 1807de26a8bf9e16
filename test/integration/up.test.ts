import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { UpState } from '../../core/up-state.js';
import { dr, freePort, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { type DrProcess, pidAlive, startDr, stopAll } from '../helpers/processes.js';
import { servedAppArgs } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();
const READY = /Ctrl-C stops everything/;
const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));

/** Waits until none of `pids` runs, failing after `ms`. */
async function allGone(pids: number[], ms = 20_000): Promise<number[]> {
  const until = Date.now() + ms;
  let left = pids.filter(pidAlive);
  while (left.length > 0 && Date.now() < until) {
    await sleep(100);
    left = pids.filter(pidAlive);
  }
  return left;
}

describe('dr up', () => {
  let t: TestHome;
  const started: DrProcess[] = [];
  const extraPids: number[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    t = await testHome();
  });

  afterEach(async () => {
    for (const p of started.splice(0)) await p.stop();
    await stopAll();
    // Anything a failed test left: the children up.json named.
    for (const pid of extraPids.splice(0)) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    await t?.cleanup();
  });

  const env = () => ({ DR_HOME: t.home, DR_LOG_LEVEL: 'info', REDIS_URL: '', DR_GATEWAY: '' });
  async function upOn(args: string[] = [], extra: NodeJS.ProcessEnv = {}): Promise<DrProcess> {
    // Tests run side by side: each serve gets its own port rather than racing for 8787.
    const listen = args.includes('--listen') ? [] : ['--listen', `127.0.0.1:${await freePort()}`];
    const p = startDr(['up', ...listen, ...args], { ...env(), ...extra });
    started.push(p);
    return p;
  }
  function upState(): UpState {
    const s = JSON.parse(readFileSync(join(t.home, 'run', 'up.json'), 'utf8')) as UpState;
    extraPids.push(...s.children.map((c) => c.pid));
    return s;
  }

  it('starts Redis, gateway, worker and serve, is found by other commands, and stops all of it on SIGTERM', async () => {
    const listen = `127.0.0.1:${await freePort()}`;
    const p = await upOn(['--listen', listen]);
    await p.waitFor(READY, 60_000);
    const state = upState();
    expect(state.children.map((c) => c.name)).toEqual(['redis', 'gateway', 'worker', 'serve']);
    // Redis has a password made for this start; it is in up.json (0600) and never printed.
    const password = /^redis:\/\/:([0-9a-f]{48})@127\.0\.0\.1:\d+$/.exec(state.redisUrl)?.[1];
    expect(password).toBeDefined();
    expect(p.output()).not.toContain(password);
    expect(readFileSync(join(t.home, 'run', 'redis.log'), 'utf8')).not.toContain(password);
    // Without the password Redis refuses (a raw PING, as any local user could send it).
    const { port } = new URL(state.redisUrl);
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1', () => sock.write('PING\r\n'));
      sock.once('data', (c) => {
        resolve(c.toString());
        sock.destroy();
      });
      sock.once('error', reject);
    });
    expect(answer).toMatch(/^-NOAUTH/);
    expect(state.listen).toBe(listen);
    expect(p.output()).toContain(`serve              http://${listen}`);
    expect((await fetch(`http://${listen}/healthz`)).status).toBe(200);
    const page = await fetch(`http://${listen}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    // Another command with only DR_HOME finds the gateway (status) and Redis (cancel).
    const status = await dr(['status', '--json'], { DR_HOME: t.home });
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toEqual([]);
    const cancel = await dr(['cancel', 'op-nothing'], { DR_HOME: t.home, DR_LOG_LEVEL: 'silent' });
    expect(cancel.err).not.toContain('REDIS_URL is not set');
    expect(cancel.err).toContain('op-nothing');

    expect(await p.stop()).toBe(0);
    expect(await allGone(state.children.map((c) => c.pid))).toEqual([]);
    expect(existsSync(join(t.home, 'run', 'up.json'))).toBe(false);
    expect(p.output()).toContain('nothing left running');
    // Once it is down, commands say Redis is not set instead of using a dead one.
    const after = await dr(['cancel', 'op-nothing'], { DR_HOME: t.home, REDIS_URL: '' });
    expect(after.err).toContain('REDIS_URL is not set');
  });

  it('uses the Redis REDIS_URL names instead of starting one, and --json prints where everything is', async () => {
    const redis = await startRedis();
    let p: Awaited<ReturnType<typeof upOn>> | undefined;
    try {
      p = await upOn(['--json'], { REDIS_URL: redis.url, DR_LOG_LEVEL: 'warn' });
      await p.waitFor(/^\{"pid".*\}$/m, 60_000);
      const line = p
        .output()
        .split('\n')
        .find((l) => l.startsWith('{"pid"')) as string;
      const printed = JSON.parse(line) as UpState;
      expect(printed.children.map((c) => c.name)).toEqual(['gateway', 'worker', 'serve']);
      expect(printed.redisUrl).toBe(redis.url);
      expect(printed.gateway).toBe(upState().gateway);
      expect(p.output()).not.toContain('Ctrl-C stops everything'); // the JSON line replaces the summary
      expect(await p.stop()).toBe(0);
    } finally {
      // dr up first, while its Redis is still there: stopped the other way round, a failed
      // test left dr up's worker waiting for Redis past the kill and orphaned.
      await p?.stop();
      await redis.stop();
    }
  });

  it('stops at once, leaving nothing, when a signal comes while it is still starting', async () => {
    const p = await upOn();
    await p.waitFor(/gateway listening on/, 60_000);
    expect(await p.stop()).toBe(0);
    expect(p.output()).toContain('nothing left running');
    expect(p.output()).not.toContain('Ctrl-C stops everything');
    // Every part of this home has its path on its command line: none may run.
    const left: string[] = [];
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      } catch {
        continue; // ended meanwhile
      }
      if (cmd.includes(t.home)) left.push(`${e}: ${cmd.replaceAll('\0', ' ')}`);
    }
    expect(left).toEqual([]);
  });

  it('refuses a second dr up on the same DR_HOME, naming the running one', async () => {
    const first = await upOn();
    await first.waitFor(READY, 60_000);
    upState();
    const second = await upOn();
    expect(await second.exited).toBe(2);
    expect(second.output()).toContain(`already running on ${t.home} (pid ${first.child.pid})`);
    expect(second.output()).toContain('To resolve');
    // The first one is untouched.
    expect(pidAlive(first.child.pid as number)).toBe(true);
    expect(upState().pid).toBe(first.child.pid);
  });

  it('refuses a --listen address that is taken, naming it', async () => {
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const p = await upOn(['--listen', `127.0.0.1:${port}`]);
      expect(await p.exited).toBe(2);
      expect(p.output()).toContain(`serve: 127.0.0.1:${port} is in use`);
      expect(p.output()).toContain('pass another --listen');
      expect(p.output()).not.toContain('starting redis-server'); // nothing was started
    } finally {
      blocker.close();
    }
  });

  it('moves the gateway to a free port when its port is taken, and says so', async () => {
    const config = await t.config();
    const [host, port] = config.gateway.listen.split(':');
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(Number(port), host, r));
    try {
      const p = await upOn();
      await p.waitFor(READY, 60_000);
      expect(p.output()).toContain(`gateway: ${config.gateway.listen} is in use, so`);
      const state = upState();
      expect(state.gateway).not.toBe(config.gateway.listen);
      const status = await dr(['status', '--json'], { DR_HOME: t.home });
      expect(status.code).toBe(0);
    } finally {
      blocker.close();
    }
  });

  it('fails clearly when DR_HOME is not writable', async (ctx) => {
    const root = process.getuid?.() === 0;
    if (root) {
      // root writes through permission bits: a read-only bind mount of the home is what stops it.
      const m = spawnSync('sh', [
        '-c',
        `mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"`,
        t.home,
      ]);
      if (m.status !== 0) return skipBecause(ctx, `cannot bind-mount read-only: ${m.stderr}`);
    } else {
      spawnSync('chmod', ['0500', t.home]);
    }
    try {
      const p = startDr(['up'], env());
      expect(await p.exited).toBe(2);
      expect(p.output()).toContain(
        `DR_HOME ${t.home} is not writable (${root ? 'EROFS' : 'EACCES'}`,
      );
      expect(p.output()).toContain('To resolve');
    } finally {
      if (root) spawnSync('umount', [t.home]);
      else spawnSync('chmod', ['0700', t.home]);
    }
  });

  it('refuses a home that was never initialised, saying how to make one', async () => {
    const p = startDr(['up'], { ...env(), DR_HOME: join(t.dir, 'nothing-here') });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('no Lifeboat home at');
    expect(p.output()).toContain('run `dr init` first');
    expect(existsSync(join(t.dir, 'nothing-here'))).toBe(false);
  });

  it('says how to install redis-server when it is missing', async () => {
    const p = startDr(['up'], { ...env(), PATH: join(t.dir, 'empty-path') });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('redis-server is not installed');
    expect(p.output()).toMatch(/install it with `(sudo )?apt-get install -y redis-server`/);
    expect(existsSync(join(t.home, 'run', 'up.json'))).toBe(false);
    expect(existsSync(join(t.home, 'run', 'up.lock'))).toBe(false);
  });

  it('restarts a child that crashes, with backoff, and says so', async () => {
    const p = await upOn([], { DR_UP_BACKOFF: '200ms' });
    await p.waitFor(READY, 60_000);
    const gateway = upState().children.find((c) => c.name === 'gateway');
    process.kill(gateway?.pid as number, 'SIGKILL');
    await p.waitFor(/gateway was killed by SIGKILL; restarting it in/, 10_000);
    await p.waitFor(/gateway is back \(pid \d+\)/, 30_000);
    const status = await dr(['status', '--json'], { DR_HOME: t.home });
    expect(status.code).toBe(0);
    expect(await p.stop()).toBe(0);
  });

  it('stops everything, exit 1, when a child keeps crashing', async () => {
    const p = await upOn([], { DR_UP_MAX_RESTARTS: '0' });
    await p.waitFor(READY, 60_000);
    const state = upState();
    const worker = state.children.find((c) => c.name === 'worker');
    process.kill(worker?.pid as number, 'SIGKILL');
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/worker was killed by SIGKILL .*limit 0\); stopping everything/);
    expect(await allGone(state.children.map((c) => c.pid))).toEqual([]);
    expect(existsSync(join(t.home, 'run', 'up.json'))).toBe(false);
  });

  it('stops the children a killed dr up left behind when it starts again', async () => {
    const first = await upOn();
    await first.waitFor(READY, 60_000);
    const old = upState();
    await first.kill9();
    expect(old.children.every((c) => pidAlive(c.pid))).toBe(true);
    const second = await upOn();
    await second.waitFor(READY, 60_000);
    expect(second.output()).toContain(`a previous dr up (pid ${old.pid}) left gateway running`);
    expect(await allGone(old.children.map((c) => c.pid))).toEqual([]);
    upState();
  });

  it('stops the drill servers it ran when it stops, and leaves their images for cleanup', async () => {
    const image = join(t.dir, 'web.img');
    await writeFile(
      image,
      Buffer.concat([Buffer.from('lifeboat-marker-web\n'), Buffer.alloc(256 * 1024)]),
    );
    const port = await freePort();
    const added = await dr(servedAppArgs({ name: 'web', image, port, dir: t.dir }), {
      DR_HOME: t.home,
      DR_LOG_LEVEL: 'silent',
    });
    expect(added.code).toBe(0);
    const p = await upOn();
    await p.waitFor(READY, 60_000);
    upState();
    const until = Date.now() + 60_000;
    for (;;) {
      const r = await dr(['status', 'web', '--json'], { DR_HOME: t.home, DR_LOG_LEVEL: 'silent' });
      if (r.code === 0 && JSON.parse(r.out).lastConsistentPoint) break;
      if (Date.now() > until) throw new Error(`no point: ${r.out}${r.err}`);
      await sleep(300);
    }
    const drill = startDr(['drill', 'web', '--wait'], { DR_HOME: t.home, DR_LOG_LEVEL: 'warn' });
    expect(await drill.exited, drill.output()).toBe(0);
    const opId = /(op-[\w]+)/.exec(drill.output())?.[1] as string;
    const record = JSON.parse(
      readFileSync(join(t.home, 'recovery', opId, 'server.json'), 'utf8'),
    ) as { pgid: number };
    extraPids.push(record.pgid);
    expect(pidAlive(record.pgid)).toBe(true);
    expect(await p.stop()).toBe(0);
    expect(p.output()).toContain(`stopped the drill server of web (${opId}, pid ${record.pgid})`);
    expect(await allGone([record.pgid])).toEqual([]);
    expect(existsSync(join(t.home, 'recovery', opId, 'server.json'))).toBe(true);
  });

  it('opens the chat console in its terminal, and one SIGTERM ends both', async (ctx) => {
    if (spawnSync('script', ['--version']).status !== 0)
      return skipBecause(ctx, 'script (util-linux) is missing: no terminal to test the console in');
    const listen = `127.0.0.1:${await freePort()}`;
    // `script` gives dr up a pseudo-terminal, as a person's shell would.
    const term = spawn(
      'script',
      ['-qfec', `${process.execPath} ${bin} up --listen ${listen}`, '/dev/null'],
      { env: { ...process.env, ...env(), DR_LOG_LEVEL: 'warn' }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let text = '';
    term.stdout.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const ended = new Promise<number | null>((r) => term.once('exit', r));
    const waitFor = async (re: RegExp, ms = 60_000) => {
      const until = Date.now() + ms;
      while (!re.test(text)) {
        if (Date.now() > until)
          throw new Error(`timed out waiting for ${re} in:\n${text.slice(-3000)}`);
        await sleep(100);
      }
    };
    try {
      await waitFor(/Lifeboat console as \S+ \(console:\S+\)\. Type `help`/);
      const state = upState();
      expect(state.children.map((c) => c.name)).toContain('console');
      term.stdin.write('status\r');
      await waitFor(/No apps|Status of/);
      process.kill(state.pid, 'SIGTERM');
      await waitFor(/nothing left running/, 30_000);
      expect(await ended).toBe(0);
      expect(await allGone(state.children.map((c) => c.pid))).toEqual([]);
    } finally {
      if (term.exitCode === null) term.kill('SIGKILL');
    }
  });
});
