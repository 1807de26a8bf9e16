import { DrError } from '../../core/errors.js';
import { envUrl } from '../env-url.js';

export interface DingTalkCredentials {
  clientId: string;
  clientSecret: string;
  /** OpenAPI base, https://api.dingtalk.com by default (DINGTALK_API_URL). */
  apiUrl: string;
  /** The stream gateway's connections/open URL (DINGTALK_GATEWAY_URL). */
  gatewayUrl: string;
  /** The robot sending messages and cards: DINGTALK_ROBOT_CODE, else the client id. */
  robotCode: string;
  /** Interactive card template (DINGTALK_CARD_TEMPLATE_ID); without it notices go as markdown. */
  cardTemplateId?: string;
}

const API = 'https://api.dingtalk.com';

/**
 * DingTalk's settings from the usual variables. Without DINGTALK_CLIENT_ID DingTalk stays off
 * (the reason is returned for `dr serve` to say); a half-set pair or a bad URL is an error naming
 * the variable.
 */
export function dingTalkCredentials(
  env: NodeJS.ProcessEnv = process.env,
): DingTalkCredentials | { off: string } {
  const clientId = env.DINGTALK_CLIENT_ID?.trim();
  const clientSecret = env.DINGTALK_CLIENT_SECRET?.trim();
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
  const apiUrl = envUrl('DINGTALK_API_URL', env.DINGTALK_API_URL, API).replace(/\/$/, '');
  const gatewayUrl = envUrl(
    'DINGTALK_GATEWAY_URL',
    env.DINGTALK_GATEWAY_URL,
    `${API}/v1.0/gateway/connections/open`,
  );
  const template = env.DINGTALK_CARD_TEMPLATE_ID?.trim();
  return {
    clientId,
    clientSecret,
    apiUrl,
    gatewayUrl,
    robotCode: env.DINGTALK_ROBOT_CODE?.trim() || clientId,
    ...(template ? { cardTemplateId: template } : {}),
  };
}
