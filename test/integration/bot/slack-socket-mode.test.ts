import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackSurface } from '../../../bot/slack/slack-surface.js';
import type { Command, ControlPlane, Reply } from '../../../engine/contract.js';
import { SlackEmulator } from '../../fakes/slack-web-api.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

describe.skipIf(missingFeature(redisUnavailable(), 'slack-socket-mode.test.ts'))(
  'Slack surface in Socket Mode (real Bolt SocketModeReceiver)',
  () => {
    let redis: TestRedis;
    let cmd: Redis;
    let slack: SlackEmulator;
    let surface: SlackSurface;
    const seen: Command[] = [];
    const plane: ControlPlane = {
      submit: async (c): Promise<Reply> => {
        seen.push(c);
        return c.verb === 'approve'
          ? {
              ok: false,
              summary: 'You asked for this failover, so you cannot approve it.',
              private: true,
            }
          : { ok: true, summary: 'prod-web: protected, 2 s behind' };
      },
    };

    beforeAll(async () => {
      redis = await startRedis();
      cmd = new Redis(redis.url);
      slack = new SlackEmulator();
      await slack.start();
      surface = await SlackSurface.create({
        plane,
        credentials: {
          mode: 'socket',
          botToken: slack.token,
          appToken: slack.appToken,
          apiUrl: slack.apiUrl,
        },
        redis: cmd,
        prefix: `s${Date.now()}:`,
      });
      await surface.start();
      await waitFor('the socket', () => slack.socketConnections === 1);
    });

    afterAll(async () => {
      await surface?.stop();
      await slack?.stop();
      cmd?.disconnect();
      await redis?.stop();
    });

    it('serves no HTTP route, acks each envelope, and runs a retried envelope once', async () => {
      expect(surface.route).toBeUndefined();
      const fields = Object.fromEntries(new URLSearchParams(slack.slashCommand('status')));
      const first = slack.sendEnvelope('slash_commands', fields);
      await waitFor('the ack', () => slack.socketAcks.find((a) => a.envelope_id === first));
      const again = slack.sendEnvelope('slash_commands', fields, 1);
      await waitFor('the second ack', () => slack.socketAcks.find((a) => a.envelope_id === again));
      const answer = await waitFor('the answer', () =>
        slack.responses.find((r) => r.id === fields.trigger_id),
      );
      expect(answer.body.text).toBe('prod-web: protected, 2 s behind');
      await new Promise((r) => setTimeout(r, 300));
      expect(seen.filter((c) => c.verb === 'status')).toHaveLength(1);
    });

    it('answers a button press privately', async () => {
      const message = {
        channel: 'C0SOCK',
        ts: '1.000001',
        text: 'card',
        blocks: [
          {
            type: 'actions',
            elements: [
              {
                type: 'button',
                action_id: 'dr:approve:0',
                value: 'approve A-9',
                text: { type: 'plain_text', text: 'Approve' },
              },
            ],
          },
        ],
        updates: 0,
      };
      const payload = JSON.parse(
        new URLSearchParams(slack.buttonPress(message, 0, { user: 'U0ALICE' })).get('payload') ??
          '{}',
      ) as Record<string, unknown>;
      slack.sendEnvelope('interactive', payload);
      const eph = await waitFor('the refusal', () =>
        slack.ephemerals.find((e) => e.args.channel === 'C0SOCK'),
      );
      expect(eph.args).toMatchObject({
        user: 'U0ALICE',
        text: 'You asked for this failover, so you cannot approve it.',
      });
      expect(seen.at(-1)).toMatchObject({
        verb: 'approve',
        actor: 'slack:U0ALICE',
        args: { id: 'A-9' },
      });
    });
  },
);
