import { Writable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../core/log.js';
import {
  isConnectionError,
  REDIS_SUPERVISED_VARIABLE,
  reportRedisError,
  reportRedisReady,
  resetRedisOutage,
} from '../../../core/redis-outage.js';

function capture() {
  const lines: { level: number; msg: string }[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'debug', destination }) };
}

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), {
  code: 'ECONNREFUSED',
});

describe('Redis outages: one line down, one line back', () => {
  beforeEach(() => resetRedisOutage());

  it('says once that Redis is unreachable however many connections retry, and once that it is back', async () => {
    const { lines, log } = capture();
    let t = 1000;
    for (let i = 0; i < 40; i++) reportRedisError(log, refused, `part ${i % 4}`, {}, () => t);
    t = 3500;
    reportRedisReady(log, {}, () => t);
    reportRedisReady(log, {}, () => t); // a second connection coming back says nothing more
    await new Promise((r) => setImmediate(r));
    const shown = lines.filter((l) => l.level >= 40).map((l) => l.msg);
    expect(shown).toEqual([
      'Redis is unreachable; waiting for it to come back (commands wait, nothing is lost)',
      'Redis is back after 2.5 s',
    ]);
    expect(lines.filter((l) => l.level === 20)).toHaveLength(39);
  });

  it('keeps the two lines at info where dr up runs Redis and says it itself', async () => {
    const { lines, log } = capture();
    const env = { [REDIS_SUPERVISED_VARIABLE]: '1' };
    reportRedisError(log, refused, 'engine', env);
    reportRedisReady(log, env);
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.level)).toEqual([30, 30]);
  });

  it('reports other errors as they are', async () => {
    const { lines, log } = capture();
    reportRedisError(log, new Error('WRONGPASS invalid username-password pair'), 'engine', {});
    await new Promise((r) => setImmediate(r));
    expect(lines).toMatchObject([{ level: 40, msg: 'engine: Redis error' }]);
    expect(isConnectionError(new Error('Connection is closed.'))).toBe(true);
    expect(isConnectionError(new Error('WRONGPASS'))).toBe(false);
  });
});
