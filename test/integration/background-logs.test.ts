// A gateway started from a terminal logs to its file, so its lines never land in the next command's output.
import { spawn, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dr, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { missingFeature } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const noScript =
  spawnSync('script', ['--version']).status === 0
    ? undefined
    : 'util-linux `script` (which gives a process a terminal) is not installed';

describe.skipIf(missingFeature(noScript, 'background-logs.test.ts'))(
  'a background gateway on a terminal',
  () => {
    let t: TestHome;
    beforeEach(async () => {
      t = await testHome();
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('writes its log to DR_HOME/logs/gateway.log and only its own lines to the terminal', async () => {
      const disk = join(t.dir, 'disk.img');
      await writeFile(disk, Buffer.alloc(1024 * 1024, 1));
      expect(
        (await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${disk}`])).code,
      ).toBe(0);
      // `script` runs the gateway on a pseudo-terminal, as a user's `dr gateway &` would.
      const env: NodeJS.ProcessEnv = { ...process.env, DR_HOME: t.home };
      delete env.DR_LOG_LEVEL;
      delete env.DR_LOG_FORMAT;
      const term = spawn(
        'script',
        [
          '-qfec',
          `${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} gateway`,
          '/dev/null',
        ],
        { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true },
      );
      let screen = '';
      term.stdout.on('data', (c: Buffer) => {
        screen += c.toString();
      });
      const exited = new Promise((resolve) => term.once('exit', resolve));
      try {
        await waitFor('the gateway to listen', () => /gateway listening on/.test(screen), 60_000);
        expect(screen).toContain(`its log is ${join(t.home, 'logs', 'gateway.log')}`);
        const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
          DR_LOG_LEVEL: 'silent',
        });
        expect(once.code, once.err).toBe(0);
        const log = join(t.home, 'logs', 'gateway.log');
        await waitFor(
          'the commit in the gateway log',
          async () => /recovery point committed/.test(await readFile(log, 'utf8').catch(() => '')),
          30_000,
        );
        expect(screen).not.toContain('{"level"');
        expect(screen).not.toContain('agent session opened');
      } finally {
        try {
          process.kill(-(term.pid as number), 'SIGTERM');
        } catch {
          // already gone: nothing to stop
        }
        const killer = setTimeout(() => {
          try {
            process.kill(-(term.pid as number), 'SIGKILL');
          } catch {
            // gone by now
          }
        }, 10_000);
        await exited;
        clearTimeout(killer);
      }
    }, 120_000);
  },
);
