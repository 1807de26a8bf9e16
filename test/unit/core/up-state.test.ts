import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  readUpState,
  type UpState,
  upStatePath,
  withUpDefaults,
  writeUpState,
} from '../../../core/up-state.js';

describe('run/up.json: how other commands find a running dr up', () => {
  let home: string;
  const state = (pid: number): UpState => ({
    pid,
    startedAt: new Date().toISOString(),
    home,
    redisUrl: 'redis://127.0.0.1:41000',
    prefix: 'demo:',
    gateway: '127.0.0.1:41001',
    children: [],
  });

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'lifeboat-upstate-'));
    await mkdir(join(home, 'run'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('fills in REDIS_URL, DR_REDIS_PREFIX and DR_GATEWAY from a live dr up', async () => {
    await writeUpState(home, state(process.pid));
    expect(withUpDefaults(home, { PATH: '/bin' })).toEqual({
      PATH: '/bin',
      REDIS_URL: 'redis://127.0.0.1:41000',
      DR_REDIS_PREFIX: 'demo:',
      DR_GATEWAY: '127.0.0.1:41001',
    });
  });

  it('never overrides what the environment sets', async () => {
    await writeUpState(home, state(process.pid));
    const env = withUpDefaults(home, {
      REDIS_URL: 'redis://10.0.0.5:6379',
      DR_GATEWAY: '',
    });
    expect(env.REDIS_URL).toBe('redis://10.0.0.5:6379');
    expect(env.DR_REDIS_PREFIX).toBeUndefined(); // the prefix belongs to that dr up's Redis only
    expect(env.DR_GATEWAY).toBe('127.0.0.1:41001'); // empty counts as unset
  });

  it('ignores the file of a dr up that is gone, and a torn file', async () => {
    // A pid far above pid_max belongs to no process.
    await writeUpState(home, state(2 ** 30));
    expect(readUpState(home)).toBeUndefined();
    expect(withUpDefaults(home, {})).toEqual({});
    await writeFile(upStatePath(home), '{"pid": 1');
    expect(readUpState(home)).toBeUndefined();
  });
});
