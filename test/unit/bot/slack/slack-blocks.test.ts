// Slack messages show text as typed: the top-level text is escaped like the blocks.
import { describe, expect, it } from 'vitest';
import { slackMessage } from '../../../../bot/slack/slack-blocks.js';

describe('slackMessage', () => {
  it('escapes <, > and & in the top-level text as in the blocks, so <!channel> pings nobody', () => {
    const m = slackMessage({
      summary: 'Rejected A-3: <!channel> <@U0BOSS> & <https://evil.example|click>',
      details: ['<!here>'],
      actions: [{ kind: 'approve', label: 'Approve', words: 'approve A-3' }],
    });
    for (const text of [m.text, JSON.stringify(m.blocks)]) {
      expect(text).not.toMatch(/<!channel>|<@U0BOSS>|<!here>|<https:/);
    }
    expect(m.text).toBe(
      'Rejected A-3: &lt;!channel&gt; &lt;@U0BOSS&gt; &amp; &lt;https://evil.example|click&gt;',
    );
  });
});
