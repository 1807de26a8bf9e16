import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../core/config.js';
import { homePaths } from '../../../core/home.js';
import { cliFolder, drCli as dr, type CliResult as Result } from '../../helpers/cli-home.js';
import { skipBecause } from '../../helpers/skip.js';

// `dr init` is tested in init.test.ts.
let dir: string;
let home: string;
let disk: string;

beforeEach(async () => {
  ({ dir, home, disk } = await cliFolder());
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('dr app', () => {
  beforeEach(async () => {
    expect((await dr('init', '--home', home)).code).toBe(0);
  });

  it('adds, lists and removes an app, storing absolute paths', async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    let added: Result;
    try {
      added = await dr(
        'app',
        'add',
        'web',
        '--home',
        home,
        '--volume',
        'data=disk.img',
        '--tier',
        'prod',
      );
    } finally {
      process.chdir(cwd);
    }
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('Added app web (tier prod, block size 64KiB)');
    expect(added.stdout).toContain(`volume data: ${disk}`);

    const second = join(dir, 'logs.img');
    await writeFile(second, 'x');
    const r2 = await dr(
      '--home',
      home,
      'app',
      'add',
      'shop-db',
      '--volume',
      `db=${disk}`,
      '--volume',
      `logs=${second}`,
      '--block-size',
      '1MiB',
    );
    expect(r2.code).toBe(0);

    const config = parseConfig(await readFile(homePaths(home).config, 'utf8'));
    expect(config.apps.web).toEqual({
      tier: 'prod',
      blockSize: 65536,
      owners: [],
      rpoObjective: 60_000,
      fenceTimeout: 60_000,
      volumes: [{ name: 'data', path: disk }],
    });
    expect(added.stdout).toContain('fence: none; a failover will say the source was not fenced');

    const fenced = await dr(
      '--home',
      home,
      'app',
      'add',
      'fenced',
      '--volume',
      `data=${disk}`,
      '--fence',
      'systemctl stop web; umount /srv',
      '--fence-timeout',
      '2m',
    );
    expect(fenced.code).toBe(0);
    expect(fenced.stdout).toContain('fence: systemctl stop web; umount /srv (failover runs it');
    const withFence = parseConfig(await readFile(homePaths(home).config, 'utf8')).apps.fenced;
    expect(withFence?.fence).toBe('systemctl stop web; umount /srv');
    expect(withFence?.fenceTimeout).toBe(120_000);
    await dr('app', 'remove', 'fenced', '--home', home);
    expect(config.apps['shop-db']?.blockSize).toBe(1024 * 1024);

    const list = await dr('app', 'list', '--home', home);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^APP\s+TIER\s+BLOCK SIZE\s+VOLUMES$/);
    expect(lines[1]).toMatch(new RegExp(`^web\\s+prod\\s+64KiB\\s+data=${disk}$`));
    expect(lines[2]).toMatch(new RegExp(`^shop-db\\s+dev\\s+1MiB\\s+db=${disk}, logs=${second}$`));

    const json = await dr('app', 'list', '--home', home, '--json');
    const body = JSON.parse(json.stdout) as { apps: { name: string; volumes: unknown[] }[] };
    expect(body.apps.map((a) => a.name)).toEqual(['web', 'shop-db']);
    expect(body.apps[1]?.volumes).toHaveLength(2);

    const removed = await dr('app', 'remove', 'web', '--home', home);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain('Removed app web');
    await dr('app', 'remove', 'shop-db', '--home', home);
    const text = await readFile(homePaths(home).config, 'utf8');
    expect(text).toContain('apps: {}');
    expect((await dr('app', 'list', '--home', home)).stdout).toContain('No apps yet');
  });

  it('keeps the comments of dr.yaml', async () => {
    const p = homePaths(home);
    const before = await readFile(p.config, 'utf8');
    await writeFile(p.config, before.replace('apps: {}', '# apps we protect\napps: {}'));
    expect((await dr('app', 'add', 'web', '--home', home, '--volume', `data=${disk}`)).code).toBe(
      0,
    );
    const after = await readFile(p.config, 'utf8');
    const comments = before
      .split('\n')
      .flatMap((l) => (l.includes('#') ? [l.slice(l.indexOf('#'))] : []));
    expect(comments.length).toBeGreaterThan(5);
    for (const comment of comments) expect(after).toContain(comment);
    expect(after).toContain('# apps we protect');
    expect(after).toMatch(/apps:\n {2}web:\n {4}tier: dev\n {4}blockSize: 64KiB\n {4}volumes:\n/);
  });

  it('refuses an app that exists, unless --force', async () => {
    await dr('app', 'add', 'web', '--home', home, '--volume', `data=${disk}`);
    const again = await dr('app', 'add', 'web', '--home', home, '--volume', `other=${disk}`);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('app web already exists');
    expect(again.stderr).toContain('dr app remove web');
    expect(again.stderr).toContain('--force');
    const json = await dr(
      'app',
      'add',
      'web',
      '--home',
      home,
      '--volume',
      `other=${disk}`,
      '--json',
    );
    expect(JSON.parse(json.stdout)).toMatchObject({
      error: { code: 'app_exists', subject: 'web' },
    });

    const forced = await dr(
      'app',
      'add',
      'web',
      '--home',
      home,
      '--volume',
      `other=${disk}`,
      '--force',
    );
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('Replaced app web');
    const config = parseConfig(await readFile(homePaths(home).config, 'utf8'));
    expect(config.apps.web?.volumes.map((v) => v.name)).toEqual(['other']);
  });

  it('says an unknown app is unknown on remove', async () => {
    await dr('app', 'add', 'web', '--home', home, '--volume', `data=${disk}`);
    const r = await dr('app', 'remove', 'shop', '--home', home, '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'app_unknown', subject: 'shop' } });
    expect(r.stderr).toContain('no app named "shop"');
    expect(r.stderr).toContain('web');
  });

  it('says to run dr init when there is no home', async () => {
    const r = await dr('app', 'list', '--home', join(dir, 'nowhere'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dr init');
  });

  const bad: [string, (d: string) => string[], string][] = [
    ['a bad app name', (d) => ['Web!', '--volume', `data=${d}`], 'app name "Web!" is not valid'],
    ['a volume without =', (d) => ['web', '--volume', d], `--volume "${'DISK'}" is not NAME=PATH`],
    [
      'a volume with no path',
      () => ['web', '--volume', 'data='],
      '--volume "data=" is not NAME=PATH',
    ],
    ['a bad volume name', (d) => ['web', '--volume', `Data!=${d}`], 'volume name "Data!"'],
    [
      'a volume named twice',
      (d) => ['web', '--volume', `data=${d}`, '--volume', `data=${d}`],
      'volume name "data" is given twice',
    ],
    [
      'a missing volume path',
      (d) => ['web', '--volume', `data=${d}.nope`],
      'DISK.nope does not exist',
    ],
    ['a directory as a volume', () => ['web', '--volume', 'data=/tmp'], '/tmp is a directory'],
    [
      'a character device as a volume',
      () => ['web', '--volume', 'data=/dev/null'],
      '/dev/null is neither a block device nor a regular file',
    ],
    ['no volume at all', () => ['web'], 'app web needs at least one --volume'],
    [
      'an empty fence command',
      (d) => ['web', '--volume', `data=${d}`, '--fence', ' '],
      '--fence is empty',
    ],
    [
      'a fence timeout that is not a duration',
      (d) => ['web', '--volume', `data=${d}`, '--fence', 'true', '--fence-timeout', 'soon'],
      '--fence-timeout "soon" is not a duration from 100ms to 1h',
    ],
    [
      'a bad tier',
      (d) => ['web', '--volume', `data=${d}`, '--tier', 'production'],
      '--tier "production" is not a tier',
    ],
    [
      'a block size not a power of two',
      (d) => ['web', '--volume', `data=${d}`, '--block-size', '48KiB'],
      '--block-size "48KiB"',
    ],
    [
      'a block size too small',
      (d) => ['web', '--volume', `data=${d}`, '--block-size', '2KiB'],
      '--block-size "2KiB"',
    ],
    [
      'a block size too large',
      (d) => ['web', '--volume', `data=${d}`, '--block-size', '8MiB'],
      '--block-size "8MiB"',
    ],
    [
      'a block size that is not a size',
      (d) => ['web', '--volume', `data=${d}`, '--block-size', 'big'],
      '--block-size "big"',
    ],
    [
      'an --fsfreeze that is not a mount point',
      (d) => ['web', '--volume', `data=${d}`, '--fsfreeze', dirname(d)],
      `--fsfreeze ${'DIR'} is not a mount point`,
    ],
    [
      'a freeze hook without a thaw hook',
      (d) => ['web', '--volume', `data=${d}`, '--quiesce-freeze', 'true'],
      '--quiesce-freeze and --quiesce-thaw go together',
    ],
    [
      'a quiesce timeout that is not a duration',
      (d) => [
        'web',
        '--volume',
        `data=${d}`,
        '--quiesce-freeze',
        'true',
        '--quiesce-thaw',
        'true',
        '--quiesce-timeout',
        'forever',
      ],
      '--quiesce-timeout "forever"',
    ],
  ];

  it.each(bad)(
    'rejects %s with exit 2, naming the input, and leaves dr.yaml alone',
    async (_what, args, message) => {
      const p = homePaths(home);
      const before = await readFile(p.config, 'utf8');
      const r = await dr('app', 'add', '--home', home, ...args(disk));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message.replaceAll('DISK', disk).replaceAll('DIR', dirname(disk)));
      expect(r.stderr).toContain('To resolve,');
      expect(await readFile(p.config, 'utf8')).toBe(before);
    },
  );

  it('rejects a volume this user cannot read', async (ctx) => {
    if (process.getuid?.() === 0)
      skipBecause(ctx, 'root reads every file, so no volume is unreadable to it');
    await chmod(disk, 0o200);
    const r = await dr('app', 'add', 'web', '--home', home, '--volume', `data=${disk}`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${disk} cannot be read by this user`);
  });
});
