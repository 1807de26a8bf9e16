import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../core/errors.js';
import { pidAlive } from '../../../core/pid-alive.js';
import { PidLock } from '../../../core/pid-lock.js';

const conflict = (holder: { pid: number }) =>
  new DrError(`held by ${holder.pid}`, { code: 'agent_conflict', remedy: 'stop it' });

/** A process that exits at once: its pid is dead once it has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid as number;
  await new Promise((resolve) => child.once('exit', resolve));
  return pid;
}

describe('pidAlive', () => {
  it('is true for this process and false for an exited one or a pid that cannot be', async () => {
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(await deadPid())).toBe(false);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(pidAlive(bad)).toBe(false);
  });
});

describe('PidLock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pid-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is taken, written with pid, host and body, and released', async () => {
    const path = join(dir, 'sub', 'a.lock');
    const lock = await PidLock.acquire(path, { body: { app: 'web' }, conflict });
    expect(lock.previous).toBeUndefined();
    const body = JSON.parse(await readFile(path, 'utf8'));
    expect(body).toMatchObject({ pid: process.pid, app: 'web' });
    await lock.release();
    await expect(stat(path)).rejects.toThrow();
  });

  it('refuses while a live process holds it, naming the holder', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      const path = join(dir, 'a.lock');
      await writeFile(path, JSON.stringify({ pid: child.pid, host: 'h' }));
      await expect(PidLock.acquire(path, { conflict })).rejects.toThrow(`held by ${child.pid}`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over from a dead holder and hands back what it left', async () => {
    const path = join(dir, 'a.lock');
    const dead = await deadPid();
    await writeFile(path, JSON.stringify({ pid: dead, host: 'h', sessionId: 's1' }));
    const lock = await PidLock.acquire(path, {
      body: (previous) => ({ deadPids: previous ? [previous.pid] : [] }),
      conflict,
    });
    expect(lock.previous).toMatchObject({ pid: dead, sessionId: 's1' });
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({
      pid: process.pid,
      deadPids: [dead],
    });
  });

  it('takes over a torn file, and a bare pid as older cache locks wrote', async () => {
    const path = join(dir, 'a.lock');
    await writeFile(path, '{"pid": 12');
    expect((await PidLock.acquire(path, { conflict })).previous).toBeUndefined();
    const dead = await deadPid();
    await writeFile(path, String(dead));
    expect((await PidLock.acquire(path, { conflict })).previous?.pid).toBe(dead);
  });

  it('takes over its own pid (a container restart), or waits for it when asked', async () => {
    const path = join(dir, 'a.lock');
    await writeFile(path, JSON.stringify({ pid: process.pid, host: 'h' }));
    expect((await PidLock.acquire(path, { conflict })).previous?.pid).toBe(process.pid);
    await expect(PidLock.acquire(path, { conflict, sameProcess: 'wait' })).rejects.toThrow(
      `held by ${process.pid}`,
    );
  });

  it('waits for a live holder to let go when given time', async () => {
    const path = join(dir, 'a.lock');
    const first = await PidLock.acquire(path, { conflict });
    const second = PidLock.acquire(path, { conflict, sameProcess: 'wait', waitMs: 60_000 });
    let settled = false;
    void second.then(() => {
      settled = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false); // it cannot be: the first still holds the lock
    await first.release();
    const lock = await second;
    expect(JSON.parse(await readFile(path, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });
});
