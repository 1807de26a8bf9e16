// Why Slack could not be started: the bot token refused, or the Web API out of reach.
import { DrError, errorMessage } from '../../core/errors.js';

/** The error `start()` throws when Bolt's init (auth.test) fails. */
export function slackStartError(err: unknown, apiUrl: string): DrError {
  const platform =
    (err as { code?: string; data?: { error?: string } }).code === 'slack_webapi_platform_error';
  return platform
    ? new DrError(
        `Slack refused SLACK_BOT_TOKEN (${(err as { data?: { error?: string } }).data?.error ?? 'error'})`,
        {
          code: 'config_invalid',
          subject: 'SLACK_BOT_TOKEN',
          remedy:
            "set it to the app's Bot User OAuth Token (xoxb-…), or unset it to leave Slack off",
          cause: err,
        },
      )
    : new DrError(`cannot reach Slack's Web API at ${apiUrl} (${errorMessage(err)})`, {
        code: 'config_invalid',
        subject: 'SLACK_API_URL',
        remedy: 'check the network or proxy to Slack, or SLACK_API_URL',
        cause: err,
      });
}
