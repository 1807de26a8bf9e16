// Where a dr process's log lines go: pretty on a terminal, JSON otherwise, a file for background parts.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCliLog, logFormatOf, prettyLine } from '../../../cli/cli-log.js';

let dir: string;
let lines: string[];
const write = (l: string) => {
  lines.push(l);
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-log-'));
  lines = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the CLI log', () => {
  it('writes human lines on a terminal', () => {
    const { log, file } = createCliLog({ level: 'info', env: {}, tty: true, write });
    log.child({ part: 'agent' }).info({ app: 'web', point: 3 }, 'recovery point committed');
    expect(file).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d info {2}agent: recovery point committed \(app=web point=3\)\n$/,
    );
  });

  it('writes JSON lines when not on a terminal, or when DR_LOG_FORMAT=json', () => {
    for (const [env, tty] of [
      [{}, false],
      [{ DR_LOG_FORMAT: 'json' }, true],
    ] as const) {
      lines = [];
      const { log } = createCliLog({ level: 'info', env, tty, write });
      log.info({ app: 'web' }, 'hello');
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({ msg: 'hello', app: 'web', level: 30 });
    }
  });

  it('sends a background part to its log file on a terminal, with only warnings on the terminal', async () => {
    const { log, file } = createCliLog({
      level: 'info',
      env: {},
      tty: true,
      write,
      background: { file: 'gateway', logsDir: join(dir, 'logs') },
    });
    log.info({ app: 'web' }, 'agent session opened');
    log.warn({ url: '/v1/x' }, 'request refused');
    expect(file).toBe(join(dir, 'logs', 'gateway.log'));
    const text = await readFile(file as string, 'utf8');
    expect(
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).msg),
    ).toEqual(['agent session opened', 'request refused']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/warn {2}request refused \(url=\/v1\/x\)/);
  });

  it('leaves a background part on standard error where no one reads a terminal (systemd, Docker, dr up)', () => {
    const { log, file } = createCliLog({
      level: 'info',
      env: {},
      tty: false,
      write,
      background: { file: 'gateway', logsDir: join(dir, 'logs') },
    });
    log.info('gateway listening');
    expect(file).toBeUndefined();
    expect(JSON.parse(lines[0] ?? '').msg).toBe('gateway listening');
  });

  it('writes to DR_LOG_FILE when it is set', async () => {
    const path = join(dir, 'x', 'dr.log');
    const { log, file } = createCliLog({
      level: 'info',
      env: { DR_LOG_FILE: path },
      tty: false,
      write,
    });
    log.info('to the file');
    expect(file).toBe(path);
    expect(JSON.parse(await readFile(path, 'utf8')).msg).toBe('to the file');
    expect(lines).toEqual([]);
  });

  it('refuses a misspelt DR_LOG_FORMAT with the remedy', () => {
    expect(() => logFormatOf({ DR_LOG_FORMAT: 'yaml' }, true)).toThrow(
      /DR_LOG_FORMAT "yaml" is not a log format\. To resolve, set it to json or pretty/,
    );
  });

  it('shows a line that is not JSON as it is', () => {
    expect(prettyLine('plain words')).toBe('plain words');
  });
});
