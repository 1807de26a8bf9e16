// DingTalk as `dr serve` starts it: on when DINGTALK_CLIENT_ID is set, in stream mode.
import type { SurfaceAdapter } from '../chat-surface.js';
import { dingTalkCredentials } from './dingtalk-credentials.js';

export const dingTalkAdapter: SurfaceAdapter = {
  title: 'DingTalk',
  configure(env) {
    const credentials = dingTalkCredentials(env);
    if ('off' in credentials) return credentials;
    return {
      line: `on (stream mode${credentials.cardTemplateId ? ', interactive cards' : ', markdown messages: DINGTALK_CARD_TEMPLATE_ID is not set'})`,
      async create({ plane, connect, prefix, adminTargets, log }) {
        // dingtalk-stream is loaded only when DingTalk is on.
        const { DingTalkSurface } = await import('./dingtalk-surface.js');
        return DingTalkSurface.create({
          plane,
          credentials,
          redis: await connect('lifeboat-bot-dingtalk'),
          noticeRedis: await connect('lifeboat-bot-dingtalk-notices'),
          ...(prefix ? { prefix } : {}),
          adminTargets,
          log,
        });
      },
    };
  },
};
