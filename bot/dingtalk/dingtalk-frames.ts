// The frames DingTalk's stream gateway pushes (robot messages, card presses) and the checks on them.

/** A robot message's fields Lifeboat reads. */
export interface RobotMessage {
  msgId?: string;
  conversationId?: string;
  conversationType?: string;
  senderStaffId?: string;
  senderId?: string;
  senderNick?: string;
  sessionWebhook?: string;
  sessionWebhookExpiredTime?: number;
  text?: { content?: string };
  msgtype?: string;
  /** The robot the message is for: ours is `DINGTALK_ROBOT_CODE` (the AppKey by default). */
  robotCode?: string;
}

/** A card button press's fields Lifeboat reads. */
export interface CardCallback {
  outTrackId?: string;
  userId?: string;
  content?: string;
  spaceId?: string;
  spaceType?: string;
}

/** The conversation as a channel: a group's `dingtalk:<cid>`, a private chat's `dingtalk:user:<staffId>`. */
export function channelOf(m: RobotMessage): string | undefined {
  if (m.conversationType === '1' && m.senderStaffId) return `dingtalk:user:${m.senderStaffId}`;
  return m.conversationId ? `dingtalk:${m.conversationId}` : undefined;
}

/** Cards Lifeboat creates have out-track ids `lb-<uuid>`. */
export const isOurCard = (id: unknown): boolean =>
  typeof id === 'string' && /^lb-[0-9a-f-]{36}$/.test(id);

/** A message or delivery id fit to be a Redis key: short, printable, no spaces. */
export const isDeliveryId = (id: unknown): id is string =>
  typeof id === 'string' && /^[\x21-\x7e]{1,200}$/.test(id);

/** An id as logged: at most 80 characters. */
export const bounded = (id: unknown): string => String(id).slice(0, 80);

/** `dr drill x`, `/dr drill x` and `drill x` are the same command. */
export function stripPrefix(text: string): string {
  return text.trim().replace(/^\/?dr(\s+|$)/i, '');
}

/** A card callback answer visible to the presser only (the card's private data). */
export function privately(feedback: string) {
  return {
    cardUpdateOptions: { updatePrivateDataByKey: true },
    userPrivateData: { cardParamMap: { feedback } },
  };
}
