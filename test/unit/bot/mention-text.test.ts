import { describe, expect, it } from 'vitest';
import { mentionText } from '../../../bot/slack/mention-text.js';

describe('the words of a Slack mention', () => {
  it.each([
    ['<@U0LIFEBOAT> drill shop', 'drill shop'],
    ['<@U0LIFEBOAT|lifeboat>   status   prod-web ', 'status prod-web'],
    ['hey <@U0LIFEBOAT> failover <@U0BOB> shop', 'hey failover shop'],
    ['<@U0LIFEBOAT>', ''],
  ])('%j reads as %j', (text, words) => {
    expect(mentionText(text)).toBe(words);
  });
});
