// The mistakes a newcomer makes in the first hour, each run as a real `dr` process: one line, the remedy, the exit code.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dr, type TestHome, testHome } from '../helpers/lifeboat-home.js';

const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));

interface Ran {
  code: number;
  out: string;
  err: string;
}

/** Runs the compiled `dr` as its own process, as a user's shell would (no terminal). */
function drProcess(args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { env: withoutLogLevel(env), timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, out: stdout, err: stderr });
      },
    );
  });
}

/** The environment a user has: no DR_LOG_LEVEL unless the case sets one. */
function withoutLogLevel(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const all = { ...process.env, ...env };
  if (env.DR_LOG_LEVEL === undefined) delete all.DR_LOG_LEVEL;
  return all;
}

interface Mistake {
  /** What the user typed after `dr`. */
  args: (t: TestHome) => string[];
  code: number;
  /** The one line on standard error (or standard output when `stdout` is set). */
  line: RegExp;
  stdout?: boolean;
  env?: NodeJS.ProcessEnv;
}

const table: Record<string, Mistake> = {
  'dr --version': {
    args: () => ['--version'],
    code: 0,
    line: /^lifeboat \d+\.\d+\.\d+ \(node \d+/,
    stdout: true,
  },
  'status of an app nobody defined': {
    args: () => ['status', 'nosuchapp'],
    code: 2,
    line: /^dr: no app named "nosuchapp"\. To resolve, use one of: web .*dr app add nosuchapp/,
  },
  'status with a typo': {
    args: () => ['status', 'wbe'],
    code: 2,
    line: /^dr: no app named "wbe"\. To resolve, did you mean web\?/,
  },
  'points of an app nobody defined': {
    args: () => ['points', 'nosuchapp'],
    code: 2,
    line: /^dr: no app named "nosuchapp"\. To resolve, use one of: web/,
  },
  'points of a defined app before its first point': {
    args: () => ['points', 'web'],
    code: 2,
    line: /^dr: the gateway holds no replica of app "web"\. To resolve, start replicating it with `dr agent --app web`/,
  },
  'verify of an app nobody defined': {
    args: () => ['verify', 'nosuchapp'],
    code: 2,
    line: /^dr: no app named "nosuchapp"/,
  },
  'restore into a folder that does not exist': {
    args: () => [
      'restore',
      'web',
      '--point',
      'latest',
      '--volume',
      'data',
      '--to',
      '/no/such/dir/x.img',
    ],
    code: 2,
    line: /^dr: cannot write --to \/no\/such\/dir\/x\.img: \/no\/such\/dir does not exist\. To resolve, create it first/,
  },
  'restore of an app nobody defined': {
    args: (t) => [
      'restore',
      'nosuchapp',
      '--point',
      'latest',
      '--volume',
      'data',
      '--to',
      join(t.dir, 'x.img'),
    ],
    code: 2,
    line: /^dr: no app named "nosuchapp"/,
  },
  'agent for an app nobody defined': {
    args: () => ['agent', '--app', 'nosuchapp', '--once'],
    code: 2,
    line: /^dr: no app named "nosuchapp"\. To resolve, use one of: web/,
  },
  'removing an app nobody defined': {
    args: () => ['app', 'remove', 'nosuchapp'],
    code: 2,
    line: /^dr: no app named "nosuchapp"/,
  },
  'adding a volume that does not exist': {
    args: () => ['app', 'add', 'shop', '--volume', 'data=/no/such.img'],
    code: 2,
    line: /^dr: volume data: \/no\/such\.img does not exist\. To resolve, check the path/,
  },
  'init over an existing home': {
    args: () => ['init'],
    code: 2,
    line: /^dr: .* is already a Lifeboat home .*To resolve, use another --home, or pass --force/,
  },
  'a misspelt DR_LOG_LEVEL': {
    args: () => ['status'],
    env: { DR_LOG_LEVEL: 'loud' },
    code: 2,
    line: /^dr: DR_LOG_LEVEL "loud" is not a log level\. To resolve, set it to one of trace, debug/,
  },
  'a misspelt DR_LOG_FORMAT on a part that logs': {
    args: () => ['agent', '--app', 'web', '--once'],
    env: { DR_LOG_FORMAT: 'yaml' },
    code: 2,
    line: /^dr: DR_LOG_FORMAT "yaml" is not a log format\. To resolve, set it to json or pretty/,
  },
  'a DR_TRACE_BUFFER_KIB that is not a number (once ignored in silence)': {
    args: () => ['agent', '--app', 'web', '--once'],
    env: { DR_TRACE_BUFFER_KIB: 'lots' },
    code: 2,
    line: /^dr: DR_TRACE_BUFFER_KIB "lots" is not a whole number of KiB above 0\. To resolve, set it like 4096/,
  },
  'a mistyped command': {
    args: () => ['statsu'],
    code: 2,
    line: /^dr: unknown command 'statsu' \(Did you mean status\?\) \(run `dr --help` for usage\)$/,
  },
  'an option a command does not take': {
    args: () => ['status', '--jsn'],
    code: 2,
    line: /^dr: unknown option '--jsn' \(Did you mean --json\?\) \(run `dr --help` for usage\)$/,
  },
  'a command without its argument': {
    args: () => ['points'],
    code: 2,
    line: /^dr: missing required argument 'app' \(run `dr --help` for usage\)$/,
  },
  'a restore without --to': {
    args: () => ['restore', 'web', '--point', 'latest', '--volume', 'data'],
    code: 2,
    line: /^dr: restore needs --to FILE \(or --instant --mount DIR\)\. To resolve, add --to FILE/,
  },
  'a drill without Redis': {
    args: () => ['drill', 'web', '--wait'],
    code: 2,
    line: /^dr: REDIS_URL is not set; .*To resolve, set REDIS_URL=/,
  },
  'a status page sign-in as someone else outside the demo home': {
    args: () => ['signin', '--as', 'bob'],
    code: 2,
    line: /^dr: --as bob is refused: the console acts as the operating-system user who runs it .*To resolve, log in as that person/,
  },
  'a status page sign-in for an address that is not http': {
    args: () => ['signin', '--url', 'ftp://127.0.0.1:8787'],
    code: 2,
    line: /^dr: --url "ftp:\/\/127\.0\.0\.1:8787" is not an http\(s\) address\. To resolve, give the status page like http:\/\/127\.0\.0\.1:8787/,
  },
};

describe('the first hour’s mistakes: one line with the remedy, and the exit code', () => {
  let t: TestHome;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    t = await testHome();
    env = { DR_HOME: t.home, REDIS_URL: '', DR_GATEWAY: '' };
    const disk = join(t.dir, 'disk.img');
    await writeFile(disk, Buffer.alloc(1024 * 1024));
    const added = await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${disk}`]);
    expect(added.code, added.err).toBe(0);
    await t.startGateway();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  for (const [name, m] of Object.entries(table)) {
    it(name, async () => {
      const r = await drProcess(m.args(t), { ...env, ...m.env });
      const text = m.stdout ? r.out : r.err;
      expect(r.code, `${r.out}${r.err}`).toBe(m.code);
      expect(text.trimEnd().split('\n'), `${r.out}${r.err}`).toHaveLength(1);
      expect(text.trimEnd()).toMatch(m.line);
      expect(text).not.toMatch(/\n\s+at /); // no stack trace
    });
  }

  it('asking about a name that does not exist creates nothing: it is not listed afterwards', async () => {
    await drProcess(['status', 'ghost'], env);
    await drProcess(['points', 'ghost'], env);
    const all = await drProcess(['status', '--json'], env);
    expect(all.code, all.err).toBe(0);
    const apps = (JSON.parse(all.out) as { app: string }[]).map((s) => s.app);
    expect(apps).toEqual(['web']);
  });

  it('an unexpected error is one line; DR_LOG_LEVEL=debug shows its stack', async () => {
    const { errorLine } = await import('../../cli/context.js');
    const err = new Error('EACCES: permission denied, open /x\n    at somewhere');
    expect(errorLine(err, undefined).split('\n')).toHaveLength(1);
    expect(errorLine(err, undefined)).toMatch(/DR_LOG_LEVEL=debug/);
    expect(errorLine(err, 'debug')).toMatch(/\n\s+at /);
  });
});
