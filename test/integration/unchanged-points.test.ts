// An agent commits no new point when nothing changed since a consistent one, and RPO counts from its word.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { until } from '../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

describe('no point when nothing changed', () => {
  let t: TestHome;
  let disk: string;
  beforeEach(async () => {
    t = await testHome();
    disk = join(t.dir, 'disk.img');
    await writeImage(disk, 2 * 1024 * 1024, 3);
    // A freeze that does nothing: the points are labelled consistent (nothing writes this file).
    const added = await dr([
      '--home',
      t.home,
      'app',
      'add',
      'web',
      '--volume',
      `data=${disk}`,
      '--quiesce-freeze',
      'true',
      '--quiesce-thaw',
      'true',
      '--force',
    ]);
    expect(added.code, added.err).toBe(0);
    await t.startGateway();
  });
  afterEach(async () => {
    await stopAll();
    await t.cleanup();
  });

  it('a second --once on an unchanged disk commits nothing and says so; a change commits again', async () => {
    const first = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toMatch(/^point 1 committed for web \((crash|app)-consistent\)/);
    const second = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(second.code, second.err).toBe(0);
    expect(second.out).toMatch(/^no change since point 1 of web \(\S+\); no new point committed/);
    const fh = await open(disk, 'r+');
    await fh.write(Buffer.alloc(4096, 7), 0, 4096, 65536);
    await fh.close();
    const third = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(third.code, third.err).toBe(0);
    expect(third.out).toMatch(/^point 2 committed for web/);
    const client = await t.client();
    expect((await client.points('web')).map((p) => p.id)).toEqual([1, 2]);
  });

  it('without a freeze too: an idle disk gets no second (fuzzy) point, and a freeze later upgrades it', async () => {
    const plain = await dr(['--home', t.home, 'app', 'add', 'db', '--volume', `data=${disk}`]);
    expect(plain.code, plain.err).toBe(0);
    const first = await dr(['--home', t.home, 'agent', '--app', 'db', '--once'], quiet);
    expect(first.out).toMatch(/^point 1 committed for db \(fuzzy\)/);
    const second = await dr(['--home', t.home, 'agent', '--app', 'db', '--once'], quiet);
    expect(second.out).toMatch(/^no change since point 1 of db \(fuzzy\)/);
    const frozen = await dr([
      '--home',
      t.home,
      'app',
      'add',
      'db',
      '--volume',
      `data=${disk}`,
      '--quiesce-freeze',
      'true',
      '--quiesce-thaw',
      'true',
      '--force',
    ]);
    expect(frozen.code, frozen.err).toBe(0);
    const third = await dr(['--home', t.home, 'agent', '--app', 'db', '--once'], quiet);
    expect(third.out).toMatch(/^point 2 committed for db \((crash|app)-consistent\): 0 blocks/);
  });

  it('a continuous agent on an idle disk keeps one point, and the RPO counts from its last check', async () => {
    const agent = startDr(['--home', t.home, 'agent', '--app', 'web', '--interval', '200ms']);
    const client = await t.client();
    const status = async (): Promise<AppStatus | undefined> => (await client.status('web'))[0];
    // Two later checks, each newer than the last: the agent keeps saying "no change".
    const a = await until(
      'a first "no change" from the agent',
      async () => {
        const s = await status();
        return s?.lastConsistentPoint?.unchangedAt ? s : undefined;
      },
      60_000,
    );
    const b = await until(
      'a later "no change"',
      async () => {
        const s = await status();
        const at = s?.lastConsistentPoint?.unchangedAt;
        return at && at > (a.lastConsistentPoint?.unchangedAt ?? '') ? s : undefined;
      },
      60_000,
    );
    expect(b.points).toBe(a.points);
    expect(b.lastConsistentPoint?.id).toBe(a.lastConsistentPoint?.id);
    const point = b.lastConsistentPoint;
    expect(Date.parse(point?.unchangedAt ?? '')).toBeGreaterThan(Date.parse(point?.time ?? ''));
    await agent.stop();
  });
});
