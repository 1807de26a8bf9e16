/** Probe 4 of issue 15: restore never writes through a symbolic link and leaves no plaintext behind. */
import { readdir, readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../replicator/gateway/gateway-server.js';
import { FaultProxy } from '../../chaos/fault-proxy.js';
import { dr, type TestHome, testHome, writeImage } from '../../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

describe('restore writes safely (probe 4)', () => {
  let t: TestHome;
  let g: Gateway;
  let victim: string;
  const restoreArgs = (to: string, ...more: string[]) => [
    '--home',
    t.home,
    'restore',
    'web',
    '--point',
    'latest',
    '--allow-fuzzy',
    '--volume',
    'a',
    '--to',
    to,
    ...more,
  ];
  const partials = async () => (await readdir(t.dir)).filter((n) => n.includes('lifeboat-partial'));

  beforeEach(async () => {
    t = await testHome();
    const img = join(t.dir, 'a.img');
    await writeImage(img, 4 * 1024 * 1024, 1);
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`])).code).toBe(
      0,
    );
    g = await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    victim = join(t.dir, 'victim');
    await writeFile(victim, 'precious');
  });
  afterEach(async () => {
    await stopAll();
    await t.cleanup();
  });

  it('refuses a target that is a symbolic link, with or without --force, and leaves the victim alone', async () => {
    const to = join(t.dir, 'out.img');
    await symlink(victim, to);
    for (const extra of [[], ['--force']]) {
      const r = await dr(restoreArgs(to, ...extra), quiet);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/is a symbolic link\. To resolve/);
    }
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect(await partials()).toEqual([]);
  });

  it('does not write through a link planted at the old partial name', async () => {
    const to = join(t.dir, 'out.img');
    await symlink(victim, `${to}.lifeboat-partial-${process.pid}`);
    const r = await dr(restoreArgs(to), quiet);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await stat(to)).mode & 0o777).toBe(0o600);
    expect((await readFile(to)).equals(await readFile(join(t.dir, 'a.img')))).toBe(true);
  });

  it('names a segment missing at the gateway instead of blaming the link', async () => {
    const segments = join(t.home, 'store', 'apps', 'web', 'segments');
    for (const f of await readdir(segments)) await unlink(join(segments, f));
    const to = join(t.dir, 'out.img');
    const r = await dr(restoreArgs(to), quiet);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /the gateway store is missing the segment file .*\.seg that point 1 of web\/a needs\. To resolve/,
    );
    expect(r.err).not.toMatch(/cannot reach|ECONNRESET/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(await partials()).toEqual([]);
    const v = await dr(['--home', t.home, 'verify', 'web'], quiet);
    expect(v.err).toMatch(/missing the segment file/);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'removes the partial image when %s arrives mid-restore',
    async (sig) => {
      // A link that stalls once the restore has begun: the signal surely lands mid-restore.
      const proxy = await FaultProxy.start({ target: g.address });
      try {
        proxy.faults.bandwidth = 64 * 1024;
        const to = join(t.dir, 'out.img');
        const p = startDr(restoreArgs(to), { DR_GATEWAY: proxy.address, DR_LOG_LEVEL: 'silent' });
        const [partial] = await waitFor(
          'the partial image',
          async () => {
            const found = await partials();
            return found.length > 0 ? found : undefined;
          },
          60_000,
        );
        proxy.faults.stalled = true;
        expect((await stat(join(t.dir, partial as string))).mode & 0o777).toBe(0o600);
        p.child.kill(sig);
        const code = await p.exited;
        expect(code).toBe(2);
        expect(p.output()).toContain(`restore interrupted by ${sig}`);
        expect(await partials()).toEqual([]);
        await expect(stat(to)).rejects.toThrow();
      } finally {
        await proxy.close();
      }
    },
  );
});
