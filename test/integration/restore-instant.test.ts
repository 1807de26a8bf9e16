import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fuseUnavailable } from '../../replicator/recovery/fuse-mount.js';
import { dr, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { loopProblem, tool } from '../helpers/loop-device.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { missingFeature } from '../helpers/skip.js';

const problem = (await loopProblem()) ?? (await fuseUnavailable());
const mountedAt = async (dir: string) =>
  (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === dir);

describe.skipIf(missingFeature(problem, 'dr restore --instant --mount'))(
  'dr restore --instant --mount: one file out of a point, straight from the vault',
  () => {
    let t: TestHome;
    let table: Buffer;

    beforeEach(async () => {
      t = await testHome();
      // An ext4 volume built from a directory (no mount needed), with "that one table" in it.
      const src = join(t.dir, 'src');
      await mkdir(join(src, 'db'), { recursive: true });
      table = randomBytes(3 * 1024 * 1024 + 123);
      await writeFile(join(src, 'db', 'orders.table'), table);
      const image = join(t.dir, 'data.img');
      await tool('mkfs.ext4', ['-q', '-F', '-d', src, image, '64M']);
      const add = ['--home', t.home, 'app', 'add', 'web', '--volume', `data=${image}`];
      expect((await dr([...add, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true'])).code).toBe(
        0,
      );
      await t.startGateway();
      const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
        DR_LOG_LEVEL: 'silent',
      });
      expect(r.code).toBe(0);
    });

    afterEach(async () => {
      await stopAll();
      await t?.cleanup();
    });

    it('mounts the point read-only, the file copies out byte-exact, and Ctrl-C unmounts everything', async () => {
      const at = join(t.dir, 'restored');
      await mkdir(at);
      const p = startDr(
        [
          '--home',
          t.home,
          'restore',
          'web',
          '--point',
          'latest',
          '--volume',
          'data',
          '--instant',
          '--mount',
          at,
        ],
        { DR_LOG_LEVEL: 'warn' },
      );
      await p.waitFor(/mounted web\/data at point \d+ .* read-only at /, 60_000);
      const copied = await readFile(join(at, 'db', 'orders.table'));
      expect(copied.equals(table)).toBe(true);
      // read-only: nothing can be written into the recovered file system
      await expect(writeFile(join(at, 'db', 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      const device = /\((\/dev\/loop\d+)\)/.exec(p.output())?.[1] as string;
      p.child.kill('SIGINT');
      expect(await p.exited).toBe(0);
      expect(p.output()).toMatch(/unmounted /);
      expect(await mountedAt(at)).toBe(false);
      const loops = await tool('losetup', ['-a']);
      expect(loops).not.toContain(`${device}:`);
    });

    it('refuses --instant without --mount, and --mount with --to, saying how to use them', async () => {
      const r = await dr([
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        'latest',
        '--volume',
        'data',
        '--instant',
      ]);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/--instant and --mount DIR go together/);
      const s = await dr([
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        'latest',
        '--volume',
        'data',
        '--instant',
        '--mount',
        t.dir,
        '--to',
        join(t.dir, 'x.img'),
      ]);
      expect(s.code).not.toBe(0);
      expect(s.err).toMatch(/without --to/);
    });
  },
);
