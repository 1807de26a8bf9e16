// Slack's settings from the environment: off, Socket Mode, or the HTTP receiver.
import { readEnv } from '../../core/env.js';
import { DrError } from '../../core/errors.js';

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
  const botToken = readEnv('SLACK_BOT_TOKEN', env);
  if (!botToken) return { off: 'SLACK_BOT_TOKEN is not set' };
  const apiUrl = readEnv('SLACK_API_URL', env);
  const appToken = readEnv('SLACK_APP_TOKEN', env);
  if (appToken) {
    return { mode: 'socket', botToken, appToken, apiUrl };
  }
  const signingSecret = readEnv('SLACK_SIGNING_SECRET', env);
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
