import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import type {
  FailbackResult,
  OperationEvent,
  OperationResult,
} from '../../replicator/jobs/recovery-contract.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { openPaths } from '../helpers/open-files.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import {
  exists,
  killVolumeServers,
  recoveryClient,
  recoveryEnv,
  servedAppArgs,
  until,
  volumeServerPids,
} from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { restoreLatest } from '../helpers/restore.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();
const BLOCK = 64 * 1024;
const SIZE = 4 * 1024 * 1024;

/** Compared by hash: vitest's deep equality walks a 4 MiB buffer byte by byte for seconds. */
const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `data` into an image at `at`, like the recovered app writing to its disk. */
async function writeAt(path: string, at: number, data: Buffer): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(data, 0, data.length, at);
  } finally {
    await fh.close();
  }
}

describe('failback with the local provider', () => {
  let t: TestHome;
  let redis: TestRedis;
  let conn: Redis;
  let client: RecoveryClient;
  let env: NodeJS.ProcessEnv;
  let original: string;
  /** What the original volume must hold once failback is done. */
  let expected: Buffer;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    await t.startGateway();
    let prefix: string;
    ({ env, prefix } = recoveryEnv(t.home, redis.url));
    ({ conn, client } = recoveryClient(redis.url, prefix));
    // A 4 MiB volume: a marker line (the health check reads it), random data, zero runs.
    original = join(t.dir, 'web.img');
    expected = Buffer.alloc(SIZE);
    expected.write(`lifeboat-marker-${randomBytes(6).toString('hex')}\n`);
    for (let b = 1; b < SIZE / BLOCK; b += 2) randomBytes(BLOCK).copy(expected, b * BLOCK);
    await writeFile(original, expected);
    const port = await freePort();
    const added = await dr(
      ['--home', t.home, ...servedAppArgs({ name: 'web', image: original, port, dir: t.dir })],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(added.err).toBe('');
    const agent = await agentOnce();
    expect(agent.code).toBe(0);
  });

  afterEach(async () => {
    await stopAll();
    await client?.close();
    conn?.disconnect();
    await killVolumeServers(t?.dir);
    await redis?.stop();
    await t?.cleanup();
  });

  const agentOnce = () =>
    dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--tracker', 'scan'], {
      DR_LOG_LEVEL: 'silent',
    });

  async function worker(extra: NodeJS.ProcessEnv = {}): Promise<DrProcess> {
    const w = startDr(['worker', '--lock-duration', '2s'], { ...env, ...extra });
    await w.waitFor(/worker ready/);
    return w;
  }

  async function events(opId: string): Promise<OperationEvent[]> {
    const all = await conn.xrange(client.keys.events, '-', '+');
    return all.map(([, f]) => parseEvent(f)).filter((e): e is OperationEvent => e?.opId === opId);
  }

  async function failover(): Promise<{ opId: string; image: string }> {
    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.err).toBe('');
    const result = JSON.parse(r.out) as OperationResult;
    const image = result.server.details['volume.data'] ?? '';
    expect(await exists(image)).toBe(true);
    return { opId: result.opId, image };
  }

  /** The recovered app writes: a new marker in block 0 and new data in blocks 10 and 11. */
  async function writeAfterFailover(image: string): Promise<void> {
    const marker = Buffer.from(
      `lifeboat-marker-after-failover-${randomBytes(4).toString('hex')}\n`,
    );
    const data = randomBytes(2 * BLOCK);
    await writeAt(image, 0, marker);
    await writeAt(image, 10 * BLOCK, data);
    marker.copy(expected, 0);
    data.copy(expected, 10 * BLOCK);
  }

  /** A replicating agent (scan tracker): it stands by through the failover and resumes after failback. */
  async function runningAgent(): Promise<DrProcess> {
    const a = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '300ms'], {
      ...env,
      DR_LOG_LEVEL: 'info',
    });
    await a.waitFor(/recovery point committed|no change since the last point/, 60_000);
    return a;
  }

  /**
   * After failback: the original holds every write, and the agent that stood by resumed by itself
   * (reprotect), resending exactly the blocks failback wrote: a MAC resync, not a full one.
   */
  async function checkResumedProtection(result: FailbackResult, agent: DrProcess) {
    expect(digest(await readFile(original))).toBe(digest(expected));
    expect(result.protection).toMatchObject({ protected: true });
    expect(result.protection.detail).toMatch(/^protected again, RPO \d+ s \(point \d+/);
    expect(result.protection.blocksResent).toBe(result.volumes[0]?.blocksSent);
    await agent.waitFor(/web is protected again; replication resumes/);
    expect(agent.child.exitCode).toBe(null);
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).not.toBe('paused');
    const restored = join(t.dir, 'restored.img');
    expect((await restoreLatest(t, 'data', restored)).code).toBe(0);
    expect(digest(await readFile(restored))).toBe(digest(expected));
    await agent.stop();
  }

  it('copies back only the changed blocks, stops the recovered server, and protection resumes', async () => {
    await worker();
    const agent = await runningAgent();
    const fo = await failover();
    await agent.waitFor(/standing by until `dr failback web`/, 60_000);
    await writeAfterFailover(fo.image);
    const r = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as FailbackResult;
    expect(result.failoverOpId).toBe(fo.opId);
    expect(result.size).toBe(SIZE);
    // block 0 and blocks 10, 11 changed; nothing else was sent
    expect(result.volumes).toEqual([
      expect.objectContaining({ name: 'data', blocks: SIZE / BLOCK, blocksSent: 3 }),
    ]);
    expect(result.bytesSent).toBe(3 * BLOCK);
    const steps = (await events(result.opId)).map((e) => e.step).filter(Boolean);
    expect(steps).toEqual(
      expect.arrayContaining(['found', 'precopied', 'frozen', 'synced', 'switched']),
    );
    // the recovered server and its images are gone
    await until('the recovered server to stop', async () =>
      (await volumeServerPids(t.dir)).length === 0 ? true : undefined,
    );
    expect(await exists(join(t.home, 'recovery', fo.opId))).toBe(false);
    expect(result.unfenced).toBe(false);
    await checkResumedProtection(result, agent);
    // the original is in service again: a second failback has nothing to do
    const again = await dr(['failback', 'web', '--wait'], env);
    expect(again.code).toBe(1);
    expect(again.err).toContain('web is not failed over');
  });

  it('resumes on another worker after a kill during the freeze, and loses no later write', async () => {
    // The recovered server takes 4 s to stop: the worker is killed while it waits.
    const a = await worker({ VOLUME_SERVER_TERM_DELAY_MS: '4000' });
    const agent = await runningAgent();
    const fo = await failover();
    await writeAfterFailover(fo.image);
    const enq = await dr(['failback', 'web', '--json'], env);
    const opId = (JSON.parse(enq.out) as { opId: string }).opId;
    await until('pre-copy', async () =>
      (await events(opId)).some((e) => e.step === 'precopied') ? true : undefined,
    );
    // written after the pre-copy, before the freeze: only the final pass can carry it
    const late = randomBytes(BLOCK);
    await writeAt(fo.image, 20 * BLOCK, late);
    late.copy(expected, 20 * BLOCK);
    await a.kill9();
    await worker();
    let end: OperationEvent | undefined;
    for await (const e of client.follow({ opId, job: 'failback', app: 'web', after: '0-0' })) {
      if (e.type === 'finished') end = e;
    }
    expect(end?.error).toBeUndefined();
    const result = end?.result as FailbackResult;
    expect(result.resumes).toBeGreaterThanOrEqual(1);
    // the pre-copy ran once: the resumed job went on from the freeze
    const precopies = (await events(opId)).filter((e) => e.step === 'precopy' && e.progress === 1);
    expect(precopies).toHaveLength(1);
    expect(result.volumes[0]?.blocksSent).toBe(4);
    await checkResumedProtection(result, agent);
  });

  it('refuses failback of an app that is not failed over, and of an unknown app', async () => {
    await worker();
    const r = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('not_failed_over');
    expect(body.error.message).toContain('web is not failed over: there is nothing to fail back');
    expect(digest(await readFile(original))).toBe(digest(expected));
    const unknown = await dr(['failback', 'nosuch', '--wait'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no app named "nosuch"');
  });

  it('fails clearly when the original cannot be written, and keeps the recovered server', async () => {
    await worker();
    const fo = await failover();
    await writeAfterFailover(fo.image);
    // the original volume's path now names a directory: it cannot be opened for writing
    const cfg = await readFile(join(t.home, 'dr.yaml'), 'utf8');
    await writeFile(join(t.home, 'dr.yaml'), cfg.replace(original, t.dir));
    const r = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { error: { code: string; message: string } };
    expect(body.error.message).toContain(t.dir);
    // still failed over, still serving
    expect((await volumeServerPids(t.dir)).length).toBe(1);
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('paused');
  });

  it('starts the recovered server again when the final pass fails after the freeze', async () => {
    // The recovered server takes 4 s to stop: the original disappears meanwhile.
    await worker({ VOLUME_SERVER_TERM_DELAY_MS: '4000' });
    const fo = await failover();
    await writeAfterFailover(fo.image);
    const enq = await dr(['failback', 'web', '--json'], env);
    const opId = (JSON.parse(enq.out) as { opId: string }).opId;
    await until('pre-copy', async () =>
      (await events(opId)).some((e) => e.step === 'precopied') ? true : undefined,
    );
    // the original's path now names a directory: the final pass cannot open it
    await rm(original);
    await mkdir(original);
    let end: OperationEvent | undefined;
    for await (const e of client.follow({ opId, job: 'failback', app: 'web', after: '0-0' })) {
      if (e.type === 'finished') end = e;
    }
    expect(end?.error?.code).toBe('volume_unreadable');
    expect(end?.error?.message).toContain(`the recovered server ${fo.opId} was started again`);
    expect((await events(opId)).some((e) => e.step === 'frozen')).toBe(true);
    // the app is still failed over, and served by the recovered server again
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('paused');
    await until('the recovered server to serve again', async () =>
      (await volumeServerPids(t.dir)).length === 1 ? true : undefined,
    );
    expect(await exists(fo.image)).toBe(true);
  });

  it('a failback cancelled before its freeze leaves the app failed over and served', async () => {
    const a = await worker();
    const fo = await failover();
    await writeAfterFailover(fo.image);
    await a.stop();
    const enq = await dr(['failback', 'web', '--json'], env);
    const opId = (JSON.parse(enq.out) as { opId: string }).opId;
    // cancelled as a worker takes it: the flag is what its running job sees
    await conn.set(client.keys.cancel(opId), 'local:test');
    await worker();
    let end: OperationEvent | undefined;
    for await (const e of client.follow({ opId, job: 'failback', app: 'web', after: '0-0' })) {
      if (e.type === 'finished') end = e;
    }
    expect(end?.error?.code).toBe('operation_cancelled');
    expect((await events(opId)).some((e) => e.step === 'frozen')).toBe(false);
    expect((await volumeServerPids(t.dir)).length).toBe(1);
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('paused');
    // and a later failback still brings everything home; with no agent to resume, it says so
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'reprotectWait'], '1s'));
    const again = await dr(['failback', 'web', '--wait'], env);
    expect(again.code).toBe(0);
    expect(digest(await readFile(original))).toBe(digest(expected));
    expect(again.out).toContain(
      'is back on its original site; not protected yet: no recovery point of web within 1.0s',
    );
    expect(again.out).toContain('start its agent (`dr agent --app web`');
  });

  it('runs the unfence command last; one that fails keeps the app served at the DR site', async () => {
    await worker();
    await updateConfig(t.home, (doc) => {
      doc.setIn(['apps', 'web', 'unfence'], 'echo "source down: disk missing" >&2; exit 4');
      doc.setIn(['recovery', 'reprotectWait'], '1s');
    });
    const fo = await failover();
    await writeAfterFailover(fo.image);
    const r = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unfence_failed');
    expect(body.error.message).toContain(
      'the unfence command of web exited 4: source down: disk missing',
    );
    expect(body.error.message).toContain(`the recovered server ${fo.opId} was started again`);
    await until('the recovered server to serve again', async () =>
      (await volumeServerPids(t.dir)).length === 1 ? true : undefined,
    );
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('paused');
    // fixed: the next failback brings everything home and brings the source back
    const marker = join(t.dir, 'unfenced.txt');
    await updateConfig(t.home, (doc) =>
      doc.setIn(['apps', 'web', 'unfence'], `echo "$DR_APP $DR_VOLUME_DATA" > ${marker}`),
    );
    const again = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(again.code).toBe(0);
    const result = JSON.parse(again.out) as FailbackResult;
    expect(result.unfenced).toBe(true);
    expect(await readFile(marker, 'utf8')).toBe(`web ${original}\n`);
    expect(digest(await readFile(original))).toBe(digest(expected));
  });

  it('refuses to write an original that a process holds open, names it, and writes nothing', async () => {
    await worker();
    const fo = await failover();
    await writeAfterFailover(fo.image);
    const before = digest(await readFile(original));
    // The old server still runs at the source: it holds its volume open (nothing fenced it).
    const holder = spawn('/bin/sh', ['-c', 'exec 3<>"$1"; exec sleep 600', 'sh', original], {
      stdio: 'ignore',
    });
    try {
      await until('the old server to open its volume', async () =>
        (await openPaths(holder.pid)).includes(original) ? true : undefined,
      );
      const r = await dr(['failback', 'web', '--wait', '--json'], env);
      expect(r.code).toBe(1);
      const body = JSON.parse(r.out) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('volume_in_use');
      expect(body.error.message).toContain(
        `the original volume data (${original}) is in use, so failback wrote nothing to it: process ${holder.pid} (sleep) has it open`,
      );
      expect(body.error.message).toContain('stop those processes and unmount it');
      expect(digest(await readFile(original))).toBe(before);
      // still failed over, still served at the DR site
      expect((await volumeServerPids(t.dir)).length).toBe(1);
      const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
      expect(status.phase).toBe('paused');
    } finally {
      holder.kill('SIGKILL');
    }
    // once the old server is gone, failback goes through
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'reprotectWait'], '1s'));
    const again = await dr(['failback', 'web', '--wait', '--json'], env);
    expect(again.code).toBe(0);
    expect(digest(await readFile(original))).toBe(digest(expected));
  });
});
