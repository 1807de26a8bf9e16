// The README's demo path typed into a real terminal (tmux): `npm run demo`, then the console words the README names.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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

/**
 * Types `status` until demo-shop's line matches `want`: a phase follows the agent's next report
 * (its lease), so one answer taken just after a switch may still show the phase before it.
 */
async function statusUntil(want: RegExp, ms = 180_000): Promise<string> {
  const lines = () => screen().match(/demo-shop: \S[^\n]*/g) ?? [];
  const until = Date.now() + ms;
  for (;;) {
    const seen = lines().length;
    tmux('send-keys', '-t', session, '-l', 'status');
    tmux('send-keys', '-t', session, 'Enter');
    const line = await waitFor(
      'status to answer',
      () => {
        const now = lines();
        return now.length > seen ? now[now.length - 1] : undefined;
      },
      60_000,
    );
    if (want.test(line)) return line;
    if (Date.now() > until)
      throw new Error(`status never said ${want} within ${ms} ms; last: ${line}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

describe.skipIf(missingFeature(missing, 'readme-demo-tmux.test.ts'))(
  "the README's demo, typed into a terminal",
  () => {
    let dir: string;
    let port: number;
    /** The status page's row of demo-shop: its phase and where it runs. */
    const pageRow = async () => {
      const html = await (
        await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(20_000) })
      ).text();
      const row = /<tr data-app="demo-shop">.*?<\/tr>/s.exec(html)?.[0] ?? '';
      const text = (re: RegExp) => (re.exec(row)?.[1] ?? '').replace(/<[^>]+>/g, '');
      return {
        phase: text(/data-testid="phase">(.*?)<\/span>/),
        runsAt: text(/data-testid="runs-at">(.*?)<\/td>/),
      };
    };
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-readme-'));
      port = await freePort();
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
      expect(s).toContain('`npx dr signin --as alice` prints a sign-in link');
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
      // The console opens while the agent makes its first copy: a drill needs its first point.
      await statusUntil(/demo-shop: continuous/);
      const out = await type('drill demo-shop', /health check passed|is healthy|failed/, 180_000);
      expect(out).not.toMatch(/\bfailed\b/);
    }, 200_000);

    it('says once that Redis is down and once that it is back when dr up restarts a killed one', async () => {
      const state = JSON.parse(
        await readFile(join(dir, '.lifeboat', 'run', 'up.json'), 'utf8'),
      ) as {
        children: { name: string; pid: number }[];
      };
      const redis = state.children.find((c) => c.name === 'redis');
      expect(redis).toBeDefined();
      const before = screen().length;
      process.kill(redis?.pid as number, 'SIGKILL');
      await waitFor(
        'dr up to say Redis is back',
        () => /up: redis is back \(pid \d+\)/.test(screen().slice(before - 200)),
        60_000,
      );
      // The console works on, and nothing more about the outage came meanwhile.
      await statusUntil(/demo-shop: continuous/);
      const lines = screen()
        .slice(before - 200)
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^dr> ?$/.test(l));
      const start = lines.findIndex((l) => /redis was killed by SIGKILL; restarting it in/.test(l));
      const told = lines.slice(
        start,
        lines.findIndex((l, i) => i > start && /^(dr> )?status$/.test(l)),
      );
      expect(told).toEqual([
        expect.stringMatching(/^(dr> )?up: redis was killed by SIGKILL; restarting it in \S+ \(/),
        expect.stringMatching(/^up: redis is back \(pid \d+\)$/),
      ]);
      const after = lines.slice(start).join('\n');
      expect(after).not.toMatch(/ECONNREFUSED|\{"level"|^\s+at /m);
    }, 120_000);

    it('fails over with the two approvals and fails back, as the README says', async () => {
      // As your login (the local admin) ask; as alice and then bob approve.
      const login = /Lifeboat console as (\S+) \(console:/.exec(screen())?.[1] ?? 'root';
      await type(`as ${login}`, new RegExp(`You are ${login} now`));
      const asked = await type('failover demo-shop', /approve with `approve (A-\d+)`/, 60_000);
      const id = /approve with `approve (A-\d+)`/.exec(asked)?.[1] as string;
      await type(`approve ${id}`, /someone else|not the requester|cannot approve/i);
      await type('as alice', /You are alice now/);
      await type(`approve ${id}`, new RegExp(`Approved ${id}: 1 of 2`));
      await type('as bob', /You are bob now/);
      await type(
        `approve ${id}`,
        new RegExp(`Approved ${id}: 2 of 2; failover of demo-shop queued`),
      );
      const over = await waitFor(
        'the failover to finish',
        () => {
          const s = screen();
          return /\[operation\.(finished|failed)\] Failover of demo-shop[^\n]*/.exec(s)?.[0];
        },
        240_000,
      );
      expect(over).toMatch(/Failover of demo-shop is healthy .*source fenced/);
      await statusUntil(/demo-shop: paused|failed over/i);
      // The status page says it in one word, and where demo-shop runs now.
      expect(await pageRow()).toEqual({
        phase: 'failed over',
        runsAt: expect.stringMatching(/^DR site: local server \S+ by op-\S+ since /),
      });

      await type('as alice', /You are alice now/);
      const back = await type(
        'failback demo-shop --emergency',
        /\[operation\.(finished|failed)\] Failback of demo-shop[^\n]*/,
        300_000,
      );
      expect(back).toMatch(/Failback of demo-shop done\b.*protected again, RPO/);
      await statusUntil(/demo-shop: continuous/);
      // Home again: no "stalled" left over from the refusals while it was failed over.
      expect(await pageRow()).toEqual({
        phase: 'continuous',
        runsAt: expect.stringMatching(/^home \S+/),
      });
    }, 600_000);
  },
);
