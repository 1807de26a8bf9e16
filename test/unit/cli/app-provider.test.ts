import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../core/config.js';
import { homePaths } from '../../../core/home.js';
import { dr } from '../../helpers/lifeboat-home.js';

let dir: string;
let home: string;
let disk: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-'));
  home = join(dir, 'home');
  disk = join(dir, 'disk.img');
  await writeFile(disk, Buffer.alloc(64 * 1024));
  expect((await dr(['init', '--home', home])).code).toBe(0);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const config = async () => parseConfig(await readFile(homePaths(home).config, 'utf8'));

describe('dr app add: how the app is recovered', () => {
  it('stores the provider, start command, check and check timeout', async () => {
    const r = await dr([
      '--home',
      home,
      'app',
      'add',
      'web',
      '--volume',
      `data=${disk}`,
      '--start',
      'exec my-app --db "$DR_VOLUME_DATA"',
      '--check',
      'http://127.0.0.1:8080/health',
      '--check-timeout',
      '90s',
    ]);
    expect(r.code).toBe(0);
    expect((await config()).apps.web?.provider).toEqual({
      kind: 'local',
      start: 'exec my-app --db "$DR_VOLUME_DATA"',
      check: 'http://127.0.0.1:8080/health',
      checkTimeout: 90_000,
    });
  });

  it('leaves the provider out when nothing about it is given', async () => {
    await dr(['--home', home, 'app', 'add', 'web', '--volume', `data=${disk}`]);
    expect((await config()).apps.web?.provider).toBeUndefined();
  });

  it('refuses an unknown provider with the choices', async () => {
    const r = await dr([
      '--home',
      home,
      'app',
      'add',
      'web',
      '--volume',
      `data=${disk}`,
      '--provider',
      'aws',
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      '--provider "aws" is not a provider. To resolve, use local or alicloud',
    );
    expect((await config()).apps.web).toBeUndefined();
  });

  it('refuses --provider alicloud, pointing at the hand-written block in dr.yaml', async () => {
    const r = await dr([
      '--home',
      home,
      'app',
      'add',
      'web',
      '--volume',
      `data=${disk}`,
      '--provider',
      'alicloud',
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('write its provider block in dr.yaml by hand (see docs/recovery.md');
    expect((await config()).apps.web).toBeUndefined();
  });

  it('reads a provider from dr.yaml with its defaults', async () => {
    await dr(['--home', home, 'app', 'add', 'web', '--volume', `data=${disk}`]);
    const text = await readFile(homePaths(home).config, 'utf8');
    const withProvider = text.replace(
      /(\n {2}web:\n)/,
      '$1    provider:\n      check: test -s "$DR_VOLUME_DATA"\n',
    );
    expect(parseConfig(withProvider).apps.web?.provider).toEqual({
      kind: 'local',
      check: 'test -s "$DR_VOLUME_DATA"',
      checkTimeout: 60_000,
    });
  });
});
