import { DrError } from '../../core/errors.js';
import { envUrl } from '../env-url.js';

export type SlackCredentials =
  | { mode: 'http'; botToken: string; signingSecret: string; apiUrl: string }
  | { mode: 'socket'; botToken: string; appToken: string; apiUrl: string };

/**
 * Slack's settings from the usual variables. Without SLACK_BOT_TOKEN Slack stays off (the reason
 * is returned for `dr serve` to say); SLACK_APP_TOKEN chooses Socket Mode, else SLACK_SIGNING_SECRET
 * is needed for the HTTP receiver. A malformed value is an error naming the variable.
 */
export function slackCredentials(
  env: NodeJS.ProcessEnv = process.env,
): SlackCredentials | { off: string } {
  const botToken = env.SLACK_BOT_TOKEN?.trim();
  if (!botToken) return { off: 'SLACK_BOT_TOKEN is not set' };
  const apiUrl = apiUrlFrom(env.SLACK_API_URL);
  const appToken = env.SLACK_APP_TOKEN?.trim();
  if (appToken) {
    if (!appToken.startsWith('xapp-')) {
      throw new DrError('SLACK_APP_TOKEN is not an app-level token', {
        code: 'config_invalid',
        subject: 'SLACK_APP_TOKEN',
        remedy:
          'set it to the app-level token (xapp-…) with the connections:write scope, or unset it to use the HTTP receiver',
      });
    }
    return { mode: 'socket', botToken, appToken, apiUrl };
  }
  const signingSecret = env.SLACK_SIGNING_SECRET?.trim();
  if (!signingSecret) {
    throw new DrError('SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not', {
      code: 'config_missing',
      subject: 'SLACK_SIGNING_SECRET',
      remedy:
        "set SLACK_SIGNING_SECRET to the app's Signing Secret (Basic Information page), or SLACK_APP_TOKEN for Socket Mode",
    });
  }
  return { mode: 'http', botToken, signingSecret, apiUrl };
}

function apiUrlFrom(value: string | undefined): string {
  const href = envUrl('SLACK_API_URL', value, 'https://slack.com/api/');
  return href.endsWith('/') ? href : `${href}/`;
}
