import { describe, expect, it } from 'vitest';
import { dingTalkCredentials } from '../../../bot/dingtalk/dingtalk-credentials.js';
import { stripPrefix } from '../../../bot/dingtalk/dingtalk-frames.js';
import { slackCredentials } from '../../../bot/slack/slack-credentials.js';

describe('surface credentials from the environment', () => {
  it('leaves a surface off, saying why, when its variables are unset', () => {
    expect(slackCredentials({})).toEqual({ off: 'SLACK_BOT_TOKEN is not set' });
    expect(dingTalkCredentials({})).toEqual({ off: 'DINGTALK_CLIENT_ID is not set' });
  });

  it('chooses the HTTP receiver or Socket Mode, and normalises SLACK_API_URL', () => {
    expect(slackCredentials({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's' })).toEqual({
      mode: 'http',
      botToken: 'xoxb-1',
      signingSecret: 's',
      apiUrl: 'https://slack.com/api/',
    });
    expect(
      slackCredentials({
        SLACK_BOT_TOKEN: 'xoxb-1',
        SLACK_APP_TOKEN: 'xapp-1',
        SLACK_API_URL: 'http://127.0.0.1:9/api',
      }),
    ).toEqual({
      mode: 'socket',
      botToken: 'xoxb-1',
      appToken: 'xapp-1',
      apiUrl: 'http://127.0.0.1:9/api/',
    });
  });

  it('refuses half a configuration or a bad value, naming the variable and never echoing a secret', () => {
    expect(() => slackCredentials({ SLACK_BOT_TOKEN: 'xoxb-1' })).toThrow(
      /SLACK_SIGNING_SECRET is not.*To resolve, set SLACK_SIGNING_SECRET/,
    );
    expect(() =>
      slackCredentials({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xoxb-secret-oops' }),
    ).toThrow(/SLACK_APP_TOKEN is not an app-level token/);
    try {
      slackCredentials({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xoxb-secret-oops' });
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-oops');
    }
    expect(() =>
      slackCredentials({
        SLACK_BOT_TOKEN: 'x',
        SLACK_SIGNING_SECRET: 's',
        SLACK_API_URL: 'ftp://x',
      }),
    ).toThrow(/SLACK_API_URL is not an http\(s\) URL/);
    expect(() => dingTalkCredentials({ DINGTALK_CLIENT_ID: 'k' })).toThrow(
      /DINGTALK_CLIENT_SECRET is not set but its partner is/,
    );
    expect(() => dingTalkCredentials({ DINGTALK_CLIENT_SECRET: 'k' })).toThrow(
      /DINGTALK_CLIENT_ID is not set/,
    );
    expect(() =>
      dingTalkCredentials({
        DINGTALK_CLIENT_ID: 'k',
        DINGTALK_CLIENT_SECRET: 's',
        DINGTALK_GATEWAY_URL: 'nope',
      }),
    ).toThrow(/DINGTALK_GATEWAY_URL is not an http\(s\) URL/);
  });

  it('reads DingTalk defaults: the OpenAPI, the gateway, the robot code', () => {
    expect(dingTalkCredentials({ DINGTALK_CLIENT_ID: 'k', DINGTALK_CLIENT_SECRET: 's' })).toEqual({
      clientId: 'k',
      clientSecret: 's',
      apiUrl: 'https://api.dingtalk.com',
      oapiUrl: 'https://oapi.dingtalk.com',
      gatewayUrl: 'https://api.dingtalk.com/v1.0/gateway/connections/open',
      robotCode: 'k',
    });
  });

  it('takes `dr …`, `/dr …` and the bare words alike on DingTalk', () => {
    expect(stripPrefix('dr drill prod-web')).toBe('drill prod-web');
    expect(stripPrefix(' /DR  status')).toBe('status');
    expect(stripPrefix('drill prod-web')).toBe('drill prod-web');
    expect(stripPrefix('dr')).toBe('');
  });
});
