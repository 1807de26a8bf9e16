import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { Quiescer } from '../../../../replicator/capture/quiesce.js';
import { loopProblem, Rig, tool } from '../../../helpers/loop-device.js';
import { skipBecause } from '../../../helpers/skip.js';

const compiledQuiesce = fileURLToPath(
  new URL('../../../../dist/replicator/capture/quiesce.js', import.meta.url),
);

/** What a bounded wait found: the value, or that the promise was still pending. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((r) => {
    timer = setTimeout(() => r('pending'), ms);
  });
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(what: string, probe: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Pids of thaw watchdogs guarding agent `pid` (they carry `--agent=PID` on argv). */
async function watchdogsOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''); // it just exited
    if (argv.includes('thaw-watchdog.js') && argv.includes(`--agent=${pid}\0`)) {
      found.push(Number(entry));
    }
  }
  return found;
}

/** Held thaw shells (armThaw) still waiting: they carry `-u MOUNT` on argv. */
async function heldThaws(mount: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''); // it just exited
    if (argv.startsWith('/bin/sh\0-c\0read -r go') && argv.includes(`\0-u\0${mount}\0`)) {
      found.push(Number(entry));
    }
  }
  return found;
}

let problem: string | undefined;
beforeAll(async () => {
  problem = await loopProblem();
  if (!problem && !existsSync(compiledQuiesce)) {
    problem = `${compiledQuiesce} is missing: run \`npm run build\` first (npm test does)`;
  }
});

describe('Quiescer on a real ext4 file system', () => {
  let dir: string;
  let rig: Rig;
  let mount: string;
  /** Writers started by a test; a write into a frozen fs sleeps in the kernel until the thaw. */
  const writers: Promise<number | null>[] = [];
  const children: ChildProcess[] = [];

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-quiesce-'));
    rig = new Rig(dir);
    mount = (await rig.loop('data', 64, true)).mount as string;
  });

  afterEach(async () => {
    if (!rig) return;
    // Thaw first: blocked writers cannot even be killed while the fs is frozen.
    await tool('fsfreeze', ['-u', mount]).catch(() => undefined); // not frozen: nothing to undo
    const agents = [process.pid];
    for (const c of children.splice(0)) {
      c.kill('SIGKILL');
      if (c.pid !== undefined) agents.push(c.pid);
    }
    await Promise.all(writers.splice(0));
    // A watchdog a failed test left behind; the fs is thawed already, so SIGKILL loses nothing.
    // One may end by itself between the listing and the kill (ESRCH): it is gone, as wanted.
    for (const a of agents)
      for (const pid of await watchdogsOf(a)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
        }
      }
    await rig.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts a small synchronous write into the fs; resolves with dd's exit code. */
  function write(name: string): Promise<number | null> {
    const child = spawn(
      'dd',
      ['if=/dev/zero', `of=${join(mount, name)}`, 'bs=4k', 'count=1', 'conv=fsync', 'status=none'],
      { stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    writers.push(exited);
    return exited;
  }

  it('blocks writes until thaw, labels the cut crash-consistent, reuses its watchdog, which exits on close', async () => {
    const q = new Quiescer({ fsfreeze: [mount], timeoutMs: 30_000 });
    expect(q.enabled).toBe(true);
    const frozen = await q.freeze();
    expect(frozen.label).toBe('crash-consistent');
    expect(await watchdogsOf(process.pid)).toHaveLength(1);
    // Its thaw was forked before the freeze and waits, held, for the word.
    expect(await heldThaws(mount)).toHaveLength(1);
    expect(frozen.enterMs).toBeGreaterThanOrEqual(0);
    const w = write('while-frozen');
    expect(await within(w, 300)).toBe('pending');
    const thawed = await frozen.thaw();
    expect(await within(w, 15_000)).toBe(0);
    expect(typeof thawed.frozenMs).toBe('number');
    expect(thawed.frozenMs).toBeGreaterThanOrEqual(0);
    expect(thawed).not.toHaveProperty('thawError');
    expect(thawed.expired).toBe(false);
    expect(thawed.thawMs).toBeLessThanOrEqual(thawed.frozenMs);
    expect(await heldThaws(mount)).toEqual([]); // it ran: nothing held is left
    expect(await frozen.thaw()).toEqual(thawed); // idempotent
    // The next cut reuses the same watchdog: no process start per cut.
    const before = await watchdogsOf(process.pid);
    const again = await q.freeze();
    expect(await watchdogsOf(process.pid)).toEqual(before);
    expect((await again.thaw()).expired).toBe(false);
    q.close();
    await until('the watchdog to exit after close', async () => {
      return (await watchdogsOf(process.pid)).length === 0;
    });
  });

  it('runs the app hook before fsfreeze and its thaw after unfreeze: app-consistent', async () => {
    // Each hook writes into the fs itself, which only works while it is not frozen.
    const order = join(mount, 'order');
    const q = new Quiescer({
      fsfreeze: [mount],
      freezeCmd: `echo freeze >> ${order}`,
      thawCmd: `echo thaw >> ${order}`,
      timeoutMs: 30_000,
    });
    const frozen = await q.freeze();
    expect(frozen.label).toBe('app-consistent');
    expect(await within(write('while-frozen'), 300)).toBe('pending');
    const thawed = await frozen.thaw();
    expect(thawed.thawError).toBeUndefined();
    expect((await readFile(order, 'utf8')).split('\n')).toEqual(['freeze', 'thaw', '']);
  });

  it('a failing freeze hook rejects naming it, runs the thaw hook and leaves nothing frozen', async () => {
    const marks = join(dir, 'marks');
    const q = new Quiescer({
      fsfreeze: [mount],
      freezeCmd: 'echo "cannot lock tables" >&2; exit 3',
      thawCmd: `echo thaw >> ${marks}`,
      timeoutMs: 30_000,
    });
    const err = await q.freeze().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDrError(err, 'quiesce_failed')).toBe(true);
    expect(err).toMatchObject({ subject: 'freezeCmd' });
    expect(String((err as Error).message)).toContain(
      'freeze hook (freezeCmd) exited 3: cannot lock tables',
    );
    expect(String((err as Error).message)).toContain('To resolve,');
    expect(await readFile(marks, 'utf8')).toBe('thaw\n');
    expect(await within(write('after'), 15_000)).toBe(0);
  });

  it('a hanging freeze hook is stopped at the timeout and everything is thawed', async () => {
    const marks = join(dir, 'marks');
    const q = new Quiescer({
      fsfreeze: [mount],
      freezeCmd: 'sleep 30',
      thawCmd: `echo thaw >> ${marks}`,
      timeoutMs: 500,
    });
    const err = await q.freeze().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDrError(err, 'quiesce_failed')).toBe(true);
    expect(String((err as Error).message)).toMatch(/freeze hook \(freezeCmd\) did not finish/);
    expect(await readFile(marks, 'utf8')).toContain('thaw\n');
    expect(await within(write('after'), 15_000)).toBe(0);
  });

  it('a failing fsfreeze thaws the mounts already frozen and runs the thaw hook', async () => {
    const marks = join(dir, 'marks');
    const missing = join(dir, 'not-there');
    const q = new Quiescer({
      fsfreeze: [mount, missing],
      freezeCmd: 'true',
      thawCmd: `echo thaw >> ${marks}`,
      timeoutMs: 30_000,
    });
    const err = await q.freeze().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDrError(err, 'quiesce_failed')).toBe(true);
    expect(err).toMatchObject({ subject: missing });
    expect(String((err as Error).message)).toContain(`fsfreeze -f ${missing} exited 1`);
    expect(await readFile(marks, 'utf8')).toBe('thaw\n');
    expect(await within(write('after'), 15_000)).toBe(0);
    // The held thaw of each mount ran or was let go: none is left waiting.
    for (const m of [mount, missing]) {
      await until(`no held thaw of ${m}`, async () => (await heldThaws(m)).length === 0);
    }
  });

  it('the watchdog thaws when the agent is killed (SIGKILL) while frozen', async () => {
    const marks = join(dir, 'marks');
    const script = join(dir, 'agent.mjs');
    await writeFile(
      script,
      [
        'const [, , moduleUrl, mount, thawCmd] = process.argv;',
        'const { Quiescer } = await import(moduleUrl);',
        "const q = new Quiescer({ fsfreeze: [mount], freezeCmd: 'true', thawCmd, timeoutMs: 600000 });",
        'await q.freeze();',
        "process.stdout.write('frozen\\n');",
        "process.stdin.once('data', () => process.kill(process.pid, 'SIGKILL'));",
      ].join('\n'),
    );
    const agent = spawn(
      process.execPath,
      [script, pathToFileURL(compiledQuiesce).href, mount, `echo thaw >> ${marks}`],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    children.push(agent);
    const died = new Promise<NodeJS.Signals | null>((r) => agent.once('exit', (_c, s) => r(s)));
    let out = '';
    agent.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await until('the agent to freeze', async () => out.includes('frozen\n'));
    const w = write('while-frozen');
    expect(await within(w, 300)).toBe('pending');
    agent.stdin?.write('die\n');
    expect(await died).toBe('SIGKILL');
    expect(await within(w, 15_000)).toBe(0); // the watchdog thawed: the deadline is 10 minutes away
    await until('the thaw hook', async () => existsSync(marks));
    expect(await readFile(marks, 'utf8')).toBe('thaw\n');
  });

  it('the watchdog thaws at the deadline when nobody thaws, and thaw() says it expired', async () => {
    const marks = join(dir, 'marks');
    const q = new Quiescer({
      fsfreeze: [mount],
      freezeCmd: 'true',
      thawCmd: `echo thaw >> ${marks}`,
      timeoutMs: 1500, // room for fsfreeze on a busy machine; the watchdog still has to fire
    });
    const frozen = await q.freeze();
    expect(await within(write('after-deadline'), 15_000)).toBe(0);
    await until('the thaw hook', async () => existsSync(marks));
    const thawed = await frozen.thaw();
    expect(thawed.expired).toBe(true);
    expect(thawed.thawError).toBeUndefined();
    expect(await readFile(marks, 'utf8')).toBe('thaw\n'); // the hook ran once, by the watchdog
  });

  it('recover() thaws a file system left frozen, and is harmless when none is', async () => {
    await tool('fsfreeze', ['-f', mount]);
    const q = new Quiescer({ fsfreeze: [mount] });
    const w = write('while-frozen');
    expect(await within(w, 300)).toBe('pending');
    await q.recover();
    expect(await within(w, 15_000)).toBe(0);
    await q.recover();
    expect(await within(write('after'), 15_000)).toBe(0);
  });

  it('recover() reports a mount point it cannot thaw', async () => {
    const missing = join(dir, 'not-there');
    const err = await new Quiescer({ fsfreeze: [missing] }).recover().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isDrError(err, 'quiesce_failed')).toBe(true);
    expect(String((err as Error).message)).toContain(`fsfreeze -u ${missing}`);
  });
});

describe('Quiescer without anything to freeze', () => {
  it('is disabled, and a cut without a freeze is fuzzy', async () => {
    const q = new Quiescer({});
    expect(q.enabled).toBe(false);
    const frozen = await q.freeze();
    expect(frozen.label).toBe('fuzzy');
    expect(await frozen.thaw()).toEqual({ frozenMs: 0, expired: false });
  });

  it('refuses a freeze hook without a thaw hook', () => {
    let err: unknown;
    try {
      new Quiescer({ freezeCmd: 'true' });
    } catch (e) {
      err = e;
    }
    expect(isDrError(err, 'config_invalid')).toBe(true);
    expect(err).toMatchObject({ subject: 'thawCmd' });
  });
});
