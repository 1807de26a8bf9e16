// DingTalk's settings from the environment: off, or the app's credentials and URLs.
import { readEnv } from '../../core/env.js';
import { DrError } from '../../core/errors.js';

export interface DingTalkCredentials {
  clientId: string;
  clientSecret: string;
  /** OpenAPI base, https://api.dingtalk.com by default (DINGTALK_API_URL). */
  apiUrl: string;
  /** The older API host, for media upload (DINGTALK_OAPI_URL); without it pictures go as their summary. */
  oapiUrl?: string;
  /** The stream gateway's connections/open URL (DINGTALK_GATEWAY_URL). */
  gatewayUrl: string;
  /** The robot sending messages and cards: DINGTALK_ROBOT_CODE, else the client id. */
  robotCode: string;
  /** Interactive card template (DINGTALK_CARD_TEMPLATE_ID); without it notices go as markdown. */
  cardTemplateId?: string;
}

/**
 * DingTalk's settings from the usual variables. Without DINGTALK_CLIENT_ID DingTalk stays off
 * (the reason is returned for `dr serve` to say); a half-set pair or a bad URL is an error naming
 * the variable.
 */
export function dingTalkCredentials(
  env: NodeJS.ProcessEnv = process.env,
): DingTalkCredentials | { off: string } {
  const clientId = readEnv('DINGTALK_CLIENT_ID', env);
  const clientSecret = readEnv('DINGTALK_CLIENT_SECRET', env);
  if (!clientId && !clientSecret) return { off: 'DINGTALK_CLIENT_ID is not set' };
  if (!clientId || !clientSecret) {
    const missing = clientId ? 'DINGTALK_CLIENT_SECRET' : 'DINGTALK_CLIENT_ID';
    throw new DrError(`${missing} is not set but its partner is`, {
      code: 'config_missing',
      subject: missing,
      remedy:
        "set both DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET (the app's AppKey and AppSecret), or neither to leave DingTalk off",
    });
  }
  const apiUrl = readEnv('DINGTALK_API_URL', env);
  const gatewayUrl = readEnv('DINGTALK_GATEWAY_URL', env);
  const template = readEnv('DINGTALK_CARD_TEMPLATE_ID', env);
  return {
    clientId,
    clientSecret,
    apiUrl,
    oapiUrl: readEnv('DINGTALK_OAPI_URL', env),
    gatewayUrl,
    robotCode: readEnv('DINGTALK_ROBOT_CODE', env) ?? clientId,
    ...(template ? { cardTemplateId: template } : {}),
  };
}
