import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../core/home.js';
import { createWrappedVolumeKey } from '../../replicator/crypto/volume-key.js';
import { dr, kek, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const SIZE = 1024 * 1024;

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.once('exit', r));
  return child.pid as number;
}

// Found by the chaos suite (kill-storm): an agent killed after the gateway gave
// it a session but before it wrote the session into its lock, or killed twice
// in a row, left a lease its successor could not name; the successor was
// refused as "already replicated by an agent on <this host>" and exited.
describe('an agent restarted after its predecessors died', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
    await writeImage(join(t.dir, 'a.img'), SIZE);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${join(t.dir, 'a.img')}`]);
    await t.startGateway();
  });
  afterEach(async () => {
    await t?.cleanup();
  });

  /** Opens a session at the gateway as an agent `pid` on `host`, as a dead agent once did. */
  async function leaseAs(host: string, pid: number): Promise<void> {
    const client = await t.client();
    const key = createWrappedVolumeKey(await kek(t.home), 'web', 'a');
    await client.openSession('web', {
      agentId: `${host}:${pid}`,
      host,
      pid,
      volumes: [{ name: 'a', size: SIZE, blockSize: 65536, wrappedKey: key.toString('base64') }],
    });
  }

  /** Writes the app's agent lock as a dead agent left it. */
  async function lockLeft(body: object): Promise<void> {
    const dir = join(homePaths(t.home).stateDir, 'agents', 'web');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'agent.lock'), JSON.stringify({ host: hostname(), ...body }));
  }

  const once = () =>
    dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--tracker', 'scan'], quiet);

  it('takes over the lease of one that died before it wrote its session down', async () => {
    const dead = await deadPid();
    await leaseAs(hostname(), dead);
    await lockLeft({ pid: dead });
    const r = await once();
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });

  it('takes over the lease after two predecessors died in a row, the second before opening a session', async () => {
    const first = await deadPid();
    const second = await deadPid();
    await leaseAs(hostname(), first);
    await lockLeft({ pid: second, deadPids: [first] });
    const r = await once();
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });

  it('still refuses while an agent on another machine holds the lease, whatever pids are named', async () => {
    const dead = await deadPid();
    await leaseAs('other-machine', dead);
    await lockLeft({ pid: dead });
    const r = await once();
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      `app web is already replicated by an agent on other-machine (pid ${dead}`,
    );
  });
});
