// Slack as `dr serve` starts it: on when SLACK_BOT_TOKEN is set, in Socket Mode or behind /slack/events.
import type { SurfaceAdapter } from '../chat-surface.js';
import { slackCredentials } from './slack-credentials.js';

export const slackAdapter: SurfaceAdapter = {
  title: 'Slack',
  configure(env) {
    const credentials = slackCredentials(env);
    if ('off' in credentials) return credentials;
    return {
      line:
        credentials.mode === 'socket' ? 'on (Socket Mode)' : 'on (HTTP receiver at /slack/events)',
      async create({ plane, connect, prefix, log }) {
        // Bolt is loaded only when Slack is on.
        const { SlackSurface } = await import('./slack-surface.js');
        return SlackSurface.create({
          plane,
          credentials,
          redis: await connect('lifeboat-bot-slack'),
          noticeRedis: await connect('lifeboat-bot-slack-notices'),
          ...(prefix ? { prefix } : {}),
          log,
        });
      },
    };
  },
};
