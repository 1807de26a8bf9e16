// What held in issue 15, kept: the chat and status secrets of a real `dr serve` stay out of its
// logs, Redis, chat messages, the status page and metrics, and `ps`.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../fakes/slack-web-api.js';
import { freePort, type TestHome, testHome } from '../../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

/** Every value under every key, as text. */
async function dumpRedis(r: Redis): Promise<string> {
  const out: string[] = [];
  for (const key of await r.keys('*')) {
    const type = await r.type(key);
    out.push(key);
    if (type === 'string') out.push((await r.get(key)) ?? '');
    else if (type === 'hash') out.push(JSON.stringify(await r.hgetall(key)));
    else if (type === 'list') out.push(JSON.stringify(await r.lrange(key, 0, -1)));
    else if (type === 'set') out.push(JSON.stringify(await r.smembers(key)));
    else if (type === 'zset') out.push(JSON.stringify(await r.zrange(key, '0', '-1')));
    else if (type === 'stream') out.push(JSON.stringify(await r.xrange(key, '-', '+')));
  }
  return out.join('\n');
}

describe.skipIf(missingFeature(redisUnavailable(), 'security/secrets.test.ts'))(
  'security: secrets stay out of logs, Redis, chat, the page and ps',
  () => {
    let redis: TestRedis;
    let conn: Redis;
    let t: TestHome;
    let slack: SlackEmulator;
    let serve: DrProcess;
    let base: string;
    const statusToken = randomBytes(24).toString('hex');

    beforeAll(async () => {
      redis = await startRedis();
      conn = new Redis(redis.url);
      t = await testHome();
      slack = new SlackEmulator();
      await slack.start();
      const listen = `127.0.0.1:${await freePort()}`;
      base = `http://${listen}`;
      serve = startDr(['serve', '--listen', listen], {
        DR_HOME: t.home,
        REDIS_URL: redis.url,
        DR_REDIS_PREFIX: 'sec:',
        SLACK_BOT_TOKEN: slack.token,
        SLACK_SIGNING_SECRET: slack.signingSecret,
        SLACK_API_URL: slack.apiUrl,
        SLACK_APP_TOKEN: '',
        DINGTALK_CLIENT_ID: '',
        DR_STATUS_TOKEN: statusToken,
        DR_LOG_LEVEL: 'debug',
      });
      await serve.waitFor(/serving on/, 60_000);
    });

    afterAll(async () => {
      await stopAll();
      await slack?.stop();
      conn?.disconnect();
      await redis?.stop();
      await t?.cleanup();
    });

    it('after commands, a forged request and page reads, no secret appears anywhere', async () => {
      const events = `${base}/slack/events`;
      const sent: string[] = [];
      for (const words of ['status', 'failover nosuch', 'drill <!channel>', 'approve A-999']) {
        const body = slack.slashCommand(words);
        expect((await slack.send(events, body)).status).toBe(200);
        sent.push(new URLSearchParams(body).get('trigger_id') ?? '');
      }
      const forged = slack.slashCommand('status');
      expect(
        (await slack.send(events, forged, { signature: slack.sign(forged, 0, 'guess') })).status,
      ).toBe(401);
      await waitFor('every answer', () =>
        sent.every((id) => slack.responses.some((r) => r.id === id)),
      );
      const auth = { authorization: `Bearer ${statusToken}` };
      const reads = await Promise.all(
        ['/', '/api/status', '/metrics', `/?token=${statusToken}`].map(async (path) => {
          const res = await fetch(`${base}${path}`, { headers: auth, redirect: 'manual' });
          return `${JSON.stringify([...res.headers.entries()].filter(([k]) => k !== 'set-cookie'))}${await res.text()}`;
        }),
      );

      const places: Record<string, string> = {
        'the logs of dr serve': serve.output(),
        Redis: await dumpRedis(conn),
        'the chat messages': JSON.stringify([slack.responses, [...slack.messages.values()]]),
        'the page, the API and the metrics': reads.join('\n'),
        'ps (its command line)': readFileSync(`/proc/${serve.child.pid}/cmdline`, 'utf8'),
      };
      expect(places.Redis).toContain('sec:'); // Redis was written to: the dump is not empty
      for (const [secret, name] of [
        [slack.token, 'SLACK_BOT_TOKEN'],
        [slack.signingSecret, 'SLACK_SIGNING_SECRET'],
        [statusToken, 'DR_STATUS_TOKEN'],
      ] as const) {
        for (const [where, text] of Object.entries(places)) {
          expect(text.includes(secret), `${name} in ${where}`).toBe(false);
        }
      }
    });
  },
);
