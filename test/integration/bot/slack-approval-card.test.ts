/** The approval card in Slack with the real engine: one message updated in place as presses arrive, and a stale press asked again. */
import { writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackSurface } from '../../../bot/slack/slack-surface.js';
import { createHttpServer, type HttpServer } from '../../../cli/http-server.js';
import { AlertStore } from '../../../engine/alert-store.js';
import type { Engine } from '../../../engine/index.js';
import { recordLastRun } from '../../../engine/last-runs.js';
import { replicationKey } from '../../../replicator/gateway/state-publisher.js';
import { SlackEmulator, type SlackMessage } from '../../fakes/slack-web-api.js';
import { type EngineHome, engineHome, startEngine, testPrefix } from '../../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** The gateway's published state: the newest point 30 s before `T0`, the agent last heard at `heard`. */
const state = (now: number, phase: string, heard: number, t0: number) =>
  JSON.stringify({
    app: 'web',
    phase,
    agent: { host: 'web-1', pid: 7, lastSeen: iso(heard), clockOffsetMs: 0 },
    lastPoint: { id: 12, time: iso(t0 - 30_000), label: 'crash-consistent' },
    lastConsistentPoint: { id: 12, time: iso(t0 - 30_000), label: 'crash-consistent' },
    lagSeconds: 30,
    trackers: {},
    lastFreezeMs: null,
    lastResync: null,
    points: 12,
    bytesShipped: 0,
    throughputBytesPerSec: 0,
    storedBytes: 0,
    backlogBytes: 0,
    publishedAt: iso(now),
  });

const field = (m: SlackMessage, label: string) =>
  m.blocks
    .flatMap((b) =>
      b.type === 'section' && Array.isArray(b.fields) ? (b.fields as { text: string }[]) : [],
    )
    .map((f) => f.text)
    .find((t) => t.startsWith(`*${label}*\n`))
    ?.slice(label.length + 3);

describe.skipIf(missingFeature(redisUnavailable(), 'slack-approval-card.test.ts'))(
  'Slack approval card with the real engine',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let notices: Redis;
    let h: EngineHome;
    let engine: Engine;
    let slack: SlackEmulator;
    let surface: SlackSurface;
    let server: HttpServer;
    let events: string;
    let prefix: string;
    // Near the real time: the surface checks Slack's request timestamps against the real clock.
    const T0 = Date.now();
    let clock = T0;

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      notices = new Redis(redis.url);
      h = await engineHome();
      prefix = testPrefix();
      engine = await startEngine(h, redis.url, prefix, { now: () => clock });
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
        noticeRedis: notices,
        prefix,
      });
      await surface.start();
      const route = surface.route;
      if (!route) throw new Error('no HTTP route');
      server = await createHttpServer({ listen: '127.0.0.1:0', routes: [route] });
      events = `${server.url}/slack/events`;
    });

    afterAll(async () => {
      await surface?.stop();
      await server?.close();
      await engine?.close();
      await slack?.stop();
      cmd?.disconnect();
      notices?.disconnect();
      await redis?.stop();
      await h?.cleanup();
    });

    it('shows the facts, moves 0 → 1 of 2 in place, and asks again when the source changed before a press', async () => {
      await cmd.hset(replicationKey(prefix), 'web', state(clock, 'continuous', clock - 2_000, T0));
      await recordLastRun({ redis: cmd, prefix }, 'web', 'drill', {
        opId: 'op-51bd09',
        at: T0 - 4 * 86_400_000,
        ok: true,
        rtoMs: 74_000,
      });
      await slack.send(
        events,
        slack.slashCommand('failover web --reason zone a lost power', {
          user: 'USAM',
          channel: 'CWEB',
        }),
      );
      const card = await waitFor('the approval card', () =>
        slack.channelMessages('CWEB').find((m) => field(m, 'Approvals')),
      );
      expect(field(card, 'Asked by')).toBe('sam: "zone a lost power"');
      expect(field(card, 'Source now')).toBe(
        'replication continuous; agent on web-1 heard 2.0s ago; no open alerts',
      );
      expect(field(card, 'Approvals')).toBe('0 of 2 (from sre-oncall, not the requester)');
      const approve = (
        card.blocks.find((b) => b.type === 'actions') as {
          elements: { confirm?: { title: { text: string } } }[];
        }
      ).elements[0];
      expect(approve?.confirm?.title.text).toBe('Approve failover of web?');

      await slack.send(events, slack.buttonPress(card, 0, { user: 'UTOM' }));
      await waitFor('1 of 2 on the card', () =>
        field(card, 'Approvals')?.startsWith('1 of 2: tom') ? true : undefined,
      );

      // The agent goes quiet before uma presses: her press is not counted, the card shows why.
      clock = T0 + 3 * 60_000;
      await cmd.hset(replicationKey(prefix), 'web', state(clock, 'stalled', T0, T0));
      const silent = await new AlertStore(cmd, prefix).raise('agent-silent', 'web', 'p', clock);
      await slack.send(events, slack.buttonPress(card, 0, { user: 'UUMA' }));
      const told = await waitFor('the answer to uma', () =>
        slack.ephemerals.find((e) => e.args.user === 'UUMA'),
      );
      expect(String(told.args.text)).toContain(
        `Not counted: the facts changed since the card was shown (replication: continuous → stalled; agent: heard → silent; open alerts: none → ${silent?.id})`,
      );
      await waitFor('the new facts on the card', () =>
        field(card, 'Source now')?.startsWith('replication stalled') ? true : undefined,
      );
      expect(field(card, 'Source now')).toBe(
        `replication stalled; agent on web-1 heard 3m ago; open alerts: ${silent?.id} agent silent for under 1s`,
      );
      expect(field(card, 'Data loss')).toBe(
        'about 30s of writes (the agent was heard that long after the point)',
      );
      expect(field(card, 'Last drill')).toBe('4d ago: healthy, RTO 74s (op-51bd09)');
      expect(field(card, 'Approvals')).toBe('1 of 2: tom (from sre-oncall, not the requester)');
      // `DR_CAPTURE_CARD=FILE` keeps the card as the emulator received it (docs/chat-card.png is made from it).
      const capture = process.env.DR_CAPTURE_CARD;
      if (capture) await writeFile(capture, `${JSON.stringify(card.blocks, null, 1)}\n`);

      // Pressed again, on what she now sees: counted, the failover is approved.
      await slack.send(events, slack.buttonPress(card, 0, { user: 'UUMA' }));
      await waitFor('2 of 2 on the card', () =>
        field(card, 'Approvals')?.startsWith('2 of 2: tom, uma') ? true : undefined,
      );
      expect(field(card, 'Expires')).toBe('approved');
      expect(slack.channelMessages('CWEB')).toHaveLength(1);
      expect(slack.refusedBlocks).toEqual([]);
    });
  },
);
