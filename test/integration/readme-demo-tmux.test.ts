// The README's demo path typed into a real terminal (tmux): `npm run demo`, then the console words the README names.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/lifeboat-home.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const socket = `lifeboat-readme-${process.pid}`;
const session = 'demo';

const tool = (name: string, args: string[]) =>
  spawnSync(name, args, { stdio: 'ignore' }).status === 0 ? undefined : `${name} is not installed`;
const missing =
  tool('tmux', ['-V']) ?? tool('sqlite3', ['-version']) ?? redisUnavailable() ?? undefined;

/** tmux on a server of this test's own (its own socket), never a user's. */
function tmux(...args: string[]): string {
  const r = spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout ?? '';
}

/** What the terminal shows, with its scrollback. */
const screen = () => tmux('capture-pane', '-p', '-J', '-t', session, '-S', '-3000');

/** Types a line into the console and waits until the screen shows `answer` after it. */
async function type(line: string, answer: RegExp, ms = 30_000): Promise<string> {
  const before = screen().length;
  tmux('send-keys', '-t', session, '-l', line);
  tmux('send-keys', '-t', session, 'Enter');
  return waitFor(
    `"${line}" to answer ${answer}`,
    () => {
      const after = screen().slice(Math.max(0, before - 200));
      return answer.test(after) ? after : undefined;
    },
    ms,
  );
}

describe.skipIf(missingFeature(missing, 'readme-demo-tmux.test.ts'))(
  "the README's demo, typed into a terminal",
  () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-readme-'));
      const port = await freePort();
      // The README's `npm run demo` is `dr up --demo`; rootless keeps it to files (no loop devices).
      const command = `cd ${JSON.stringify(dir)}; exec env DR_HOME=${JSON.stringify(join(dir, '.lifeboat'))} REDIS_URL= DR_GATEWAY= DR_LOG_LEVEL= DR_DEMO_ROOTLESS=1 ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} up --demo --listen 127.0.0.1:${port}`;
      tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', command);
      await waitFor('the console', () => /dr> /.test(screen()), 120_000);
    }, 150_000);

    afterAll(async () => {
      if (process.env.LIFEBOAT_TMUX_DUMP)
        (await import('node:fs')).writeFileSync(process.env.LIFEBOAT_TMUX_DUMP, screen());
      // Ctrl-C stops everything, as the README says; then this test's tmux server goes.
      tmux('send-keys', '-t', session, 'C-c');
      await waitFor(
        'dr up to stop',
        () => spawnSync('tmux', ['-L', socket, 'has-session', '-t', session]).status !== 0,
        60_000,
      ).catch(() => undefined); // still there after a minute: the kill below ends it
      tmux('kill-server');
      await rm(dir, { recursive: true, force: true });
    }, 90_000);

    it('names the approvers in the banner and says who the console user is', () => {
      const s = screen();
      expect(s).toMatch(/on call +alice and bob \(sre-oncall\)/);
      expect(s).toContain('`as alice` then `approve A-…`');
      expect(s).toMatch(/Lifeboat console as \S+ \(console:\S+\)\./);
      expect(s).toMatch(
        /Type `as <person>` to act as someone else: .*alice \(sre-oncall\), bob \(sre-oncall\)/,
      );
    });

    it('answers status, help, whoami and as alice as the README says', async () => {
      await type('status', /demo-shop/);
      await type('help', /as <person> +act as someone else/);
      await type('whoami', /You are \S+ \(console:\S+\)/);
      await type('as alice', /You are alice now \(console:alice\)/);
      await type('whoami', /You are alice \(console:alice\), in sre-oncall\./);
    }, 120_000);

    it('drills demo-shop from the console', async () => {
      const out = await type('drill demo-shop', /health check passed|is healthy|failed/, 180_000);
      expect(out).not.toMatch(/\bfailed\b/);
    }, 200_000);
  },
);
