import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackSurface } from '../../../bot/slack/slack-surface.js';
import { createHttpServer, type HttpServer } from '../../../cli/http-server.js';
import { AuditLog } from '../../../engine/audit-log.js';
import { opMetaKey } from '../../../engine/engine-context.js';
import type { Engine } from '../../../engine/index.js';
import { encodeRpoSample, rpoHistoryKey } from '../../../replicator/gateway/state-publisher.js';
import { emitEvent } from '../../../replicator/jobs/operation-events.js';
import { recoveryKeys } from '../../../replicator/jobs/recovery-contract.js';
import { SlackEmulator } from '../../fakes/slack-web-api.js';
import { type EngineHome, engineHome, startEngine, testPrefix } from '../../helpers/engine-home.js';
import { readPng } from '../../helpers/png-pixels.js';
import { startDr, stopAll } from '../../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

const rto = { materialiseMs: 30_000, launchMs: 12_000, healthyMs: 8_000, totalMs: 52_000 };

/** A drill's result as the audit log keeps it. */
function drillResult(opId: string, dataAgeSeconds: number) {
  return {
    opId,
    app: 'web',
    job: 'drill',
    ok: true,
    result: {
      opId,
      app: 'web',
      mode: 'drill',
      point: 7,
      dataAgeSeconds,
      rto,
      health: { ok: true, output: 'ok' },
      server: { id: 'srv-1' },
      resumes: 0,
    },
  };
}

describe.skipIf(missingFeature(redisUnavailable(), 'slack-drill-report.test.ts'))(
  'drill report pictures in Slack, with the real engine and the files upload API',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let blocking: Redis;
    let h: EngineHome;
    let engine: Engine;
    let slack: SlackEmulator;
    let surface: SlackSurface;
    let server: HttpServer;
    let events: string;
    let prefix: string;

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      blocking = new Redis(redis.url);
      h = await engineHome();
      prefix = testPrefix();
      engine = await startEngine(h, redis.url, prefix);
      await engine.start();
      slack = new SlackEmulator();
      await slack.start();
      surface = await SlackSurface.create({
        plane: engine,
        credentials: {
          mode: 'http',
          botToken: slack.token,
          signingSecret: slack.signingSecret,
          apiUrl: slack.apiUrl,
        },
        redis: cmd,
        noticeRedis: blocking,
        prefix,
      });
      await surface.start();
      const route = surface.route;
      if (!route) throw new Error('no HTTP route');
      server = await createHttpServer({ listen: '127.0.0.1:0', routes: [route] });
      events = `${server.url}/slack/events`;
      // Two days of RPO history every 10 minutes, two hours of it over the 60 s objective.
      const now = Date.now();
      const m = cmd.multi();
      for (let t = now - 2 * 86_400_000; t < now; t += 600_000) {
        const over = t > now - 30 * 3_600_000 && t < now - 28 * 3_600_000;
        const s = { time: t, lagSeconds: over ? 240 : 15, phase: 'replicating' };
        m.zadd(rpoHistoryKey('web', prefix), t, encodeRpoSample(s));
      }
      await m.exec();
      const audit = new AuditLog(cmd, prefix);
      await audit.append('result', drillResult('op-a1', 20));
      await audit.append('result', drillResult('op-a2', 35));
    });

    afterAll(async () => {
      await stopAll();
      await surface?.stop();
      await server?.close();
      await engine?.close();
      await slack?.stop();
      cmd?.disconnect();
      blocking?.disconnect();
      await redis?.stop();
      await h?.cleanup();
    });

    it('`/dr report web` shares a PNG in the channel with the summary as its comment', async () => {
      await slack.send(
        events,
        slack.slashCommand('report web --days 7', { user: 'UDAN', channel: 'CWEB' }),
      );
      const file = await waitFor('the shared report', () =>
        slack.files.shared.find((f) => f.channel === 'CWEB'),
      );
      expect(slack.callsOf('files.getUploadURLExternal')[0]?.args.length).toBe(
        String(file.bytes.length),
      );
      expect(file.filename).toMatch(/^drill-report-web-\d{4}-\d\d-\d\d\.png$/);
      expect(file.comment).toMatch(/^web, last 7 d; 2 drill\(s\), 2 passed; RTO median 52s/);
      expect(file.comment).toContain('data loss at most 35s');
      expect(file.comment).toMatch(/RPO over objective \d+(\.\d)?% of the time \(1 breach\(es\)\)/);
      const png = readPng(file.bytes);
      expect(png.width).toBeGreaterThan(1200);
      expect(png.inked({ x0: 0.1, y0: 0.2, x1: 0.9, y1: 0.5 })).toBeGreaterThan(2000);
      expect(png.coloured([0xe4, 0x57, 0x56])).toBeGreaterThan(100); // the shaded breach and objective line
    });

    it('falls back to the summary, saying so, where the picture cannot be shared', async () => {
      slack.notInChannel.add('CNOPE');
      await slack.send(
        events,
        slack.slashCommand('report web', { user: 'UDAN', channel: 'CNOPE' }),
      );
      const msg = await waitFor('the summary instead', () => slack.channelMessages('CNOPE')[0]);
      expect(msg.text).toMatch(/^web, last 30 d; 2 drill\(s\)/);
      expect(msg.text).toContain(
        'the report picture could not be posted here: An API error occurred: not_in_channel',
      );
      expect(slack.files.shared.some((f) => f.channel === 'CNOPE')).toBe(false);
    });

    it('refuses a bad --days and an unknown app with one line, privately', async () => {
      const bad = slack.slashCommand('report web --days 0', { user: 'UDAN', channel: 'CWEB' });
      await slack.send(events, bad);
      const id = new URLSearchParams(bad).get('trigger_id');
      const r = await waitFor('the refusal', () => slack.responses.find((x) => x.id === id));
      expect(r.body.response_type).toBe('ephemeral');
      expect(String(r.body.text)).toContain('--days 0 is out of range: it takes 1 to 366');
      const typo = slack.slashCommand('report wbe', { user: 'UDAN', channel: 'CWEB' });
      await slack.send(events, typo);
      const tid = new URLSearchParams(typo).get('trigger_id');
      const t = await waitFor('the did-you-mean', () => slack.responses.find((x) => x.id === tid));
      expect(String(t.body.text)).toMatch(/Unknown app or plan "wbe". Did you mean web\?/);
    });

    it('posts the report picture to the app channel after a scheduled drill ends', async () => {
      const before = slack.files.shared.length;
      await cmd.set(
        opMetaKey(prefix, 'op-sched'),
        JSON.stringify({ opId: 'op-sched', app: 'web', verb: 'drill', requestedBy: 'scheduler' }),
      );
      await emitEvent(cmd, recoveryKeys(prefix).events, {
        opId: 'op-sched',
        app: 'web',
        job: 'drill',
        type: 'finished',
        result: drillResult('op-sched', 12).result as never,
      });
      const file = await waitFor('the scheduled drill report', () =>
        slack.files.shared.slice(before).find((f) => f.channel === 'CWEB'),
      );
      expect(file.comment).toMatch(/^Drill report of web: web, last 30 d; 3 drill\(s\), 3 passed/);
      expect(readPng(file.bytes).inked({ x0: 0.1, y0: 0.6, x1: 0.9, y1: 0.95 })).toBeGreaterThan(
        2000,
      );
      // A drill someone asked for by hand gets no report of its own.
      await cmd.set(
        opMetaKey(prefix, 'op-hand'),
        JSON.stringify({ opId: 'op-hand', app: 'web', verb: 'drill', requestedBy: 'slack:UALICE' }),
      );
      await emitEvent(cmd, recoveryKeys(prefix).events, {
        opId: 'op-hand',
        app: 'web',
        job: 'drill',
        type: 'finished',
        result: drillResult('op-hand', 12).result as never,
      });
      await waitFor('the hand drill’s finished message', () =>
        slack.channelMessages('CWEB').find((m) => m.text.includes('op-hand')),
      );
      expect(slack.files.shared.slice(before)).toHaveLength(1);
    });

    it('`dr report web --out F.png` draws the same report into a file; bad input is one line', async () => {
      const env = { REDIS_URL: redis.url, DR_REDIS_PREFIX: prefix, DR_LOG_LEVEL: 'warn' };
      const out = join(h.dir, 'report.png');
      const ok = startDr(['--home', h.home, 'report', 'web', '--days', '7', '--out', out], env);
      expect(await ok.exited).toBe(0);
      // The two drills audited at the start and the two the scheduled-drill test ended.
      expect(ok.output()).toMatch(/^web, last 7 d; 4 drill\(s\), 4 passed/);
      const png = readPng(await readFile(out));
      expect(png.width).toBeGreaterThan(1200);
      expect(png.inked({ x0: 0.1, y0: 0.6, x1: 0.9, y1: 0.95 })).toBeGreaterThan(2000);
      const days = startDr(['--home', h.home, 'report', 'web', '--days', 'many'], env);
      expect(await days.exited).toBe(2);
      expect(days.output()).toContain('--days takes a whole number of days like 30, not "many"');
      const file = startDr(['--home', h.home, 'report', 'web', '--out', join(h.dir, 'r.jpg')], env);
      expect(await file.exited).toBe(2);
      expect(file.output()).toContain('is neither a .png nor a .svg file');
    });
  },
);
