/** Slack messages stay within Block Kit's types and limits whatever the engine says; the check itself catches what Slack refuses. */
import type { KnownBlock } from '@slack/types';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { slackMessage } from '../../../bot/slack/slack-blocks.js';
import type { Action } from '../../../engine/contract.js';
import type { CardFacts } from '../../../engine/gather-card-facts.js';
import { approvalActions, cancelAction } from '../../../engine/submit-operation.js';
import { blockKitProblems } from '../../fakes/block-kit-check.js';

const NOW = Date.parse('2026-11-25T10:00:00Z');

function card(over: Partial<CardFacts> = {}): CardFacts {
  return {
    kind: 'approval-card',
    takenAt: NOW,
    verb: 'failover',
    app: 'web',
    tier: 'prod',
    opId: 'op-1',
    approvalId: 'A-1',
    requestedBy: 'sam',
    source: { phase: 'continuous', heartbeatAgeSeconds: 2, alerts: [] },
    point: { chosen: 'latest', id: 3, label: 'crash-consistent', ageSeconds: 4, known: true },
    dataLoss: { seconds: 4, basis: 'point-age' },
    fence: { applies: true, command: 'systemctl stop web' },
    approvals: { names: [], required: 2, groups: ['sre-oncall'] },
    status: 'pending',
    expiresAt: new Date(NOW + 1_800_000).toISOString(),
    fingerprint: '{}',
    ...over,
  };
}

describe('slack messages', () => {
  it('are typed as Block Kit and fit its limits, even with the longest words the engine may carry', () => {
    const huge = 'x'.repeat(5000);
    const actions: Action[] = Array.from({ length: 8 }, (_, i) => ({
      kind: 'approve',
      label: huge,
      words: `approve A-${i}`,
      confirm: { title: huge, text: huge, yes: huge },
    }));
    const msg = slackMessage(
      {
        summary: `<@U1> & ${huge}`,
        details: Array.from({ length: 500 }, () => huge),
        actions,
        data: {
          card: card({
            reason: huge,
            app: 'a'.repeat(63),
            source: {
              phase: 'stalled',
              reason: huge,
              alerts: Array.from({ length: 40 }, (_, i) => ({
                id: `AL-${i}`,
                kind: 'rpo' as const,
                sinceSeconds: i,
              })),
            },
          }),
        },
      },
      { now: NOW },
    );
    expectTypeOf(msg.blocks).toEqualTypeOf<KnownBlock[]>();
    expect(blockKitProblems(msg.blocks)).toEqual([]);
    expect(msg.blocks.length).toBeLessThanOrEqual(50);
  });

  it('asks before Approve of a failover or failback and before Cancel; not before Approve of a drill or Reject', () => {
    const confirms = (as: Action[]) => {
      const msg = slackMessage({ summary: 's', actions: as, data: { card: card() } }, { now: NOW });
      expect(blockKitProblems(msg.blocks)).toEqual([]);
      const el = (msg.blocks.find((b) => b.type === 'actions') as { elements: unknown[] })
        .elements as {
        value: string;
        confirm?: { title: { text: string }; text: { text: string } };
      }[];
      return el.map((e) => [e.value, e.confirm?.title.text, e.confirm?.text.text]);
    };
    expect(confirms(approvalActions('A-1', card()))).toEqual([
      [
        'approve A-1',
        'Approve failover of web?',
        'web (prod) will run from the DR site on point #3 (crash-consistent, 4 s old). Writes after it, about 4 s, are lost. The source is fenced first. Your approval is 1 of the 2 still needed.',
      ],
      ['reject A-1', undefined, undefined],
    ]);
    const failback = card({
      verb: 'failback',
      approvals: { names: ['tom'], required: 2, groups: [] },
    });
    const { point: _p, dataLoss: _d, ...noPoint } = failback;
    expect(confirms(approvalActions('A-1', noPoint))[0]).toEqual([
      'approve A-1',
      'Approve failback of web?',
      'The DR copy of web is written back to its source and the DR server stops; the app is down while the last changes are copied. Your approval starts it now.',
    ]);
    expect(confirms(approvalActions('A-1', card({ verb: 'drill' })))[0]).toEqual([
      'approve A-1',
      undefined,
      undefined,
    ]);
    expect(confirms([cancelAction('op-1', 'drill', 'web')])[0]?.[1]).toBe(
      'Cancel the drill of web?',
    );
  });

  it('a card older than a minute says when its facts were taken; a fresh one does not', () => {
    const context = (now: number) =>
      JSON.stringify(
        slackMessage({ summary: 's', data: { card: card() } }, { now }).blocks.filter(
          (b) => b.type === 'context',
        ),
      );
    expect(context(NOW + 60_000)).not.toContain('Facts as of');
    expect(context(NOW + 61_000)).toContain('Facts as of 10:00:00 UTC (61s ago)');
    expect(context(NOW + 86_400_000)).toContain('Facts as of 2026-11-25 10:00:00 UTC (24h ago)');
  });
});

describe('a card this version cannot read', () => {
  it('is left out: the message shows its summary and buttons, on every surface, without throwing', async () => {
    const { plainText } = await import('../../../bot/plain-text.js');
    const { cardParams, dingTalkMarkdown } = await import(
      '../../../bot/dingtalk/dingtalk-markdown.js'
    );
    for (const bad of [
      { kind: 'approval-card' },
      { ...card(), source: null },
      { ...card(), approvals: { names: 'tom' } },
      { ...card(), takenAt: '10:00' },
      'card',
    ]) {
      const m = { summary: 'Failover of web: 1 of 2', data: { card: bad } };
      expect(slackMessage(m, { now: NOW }).blocks).toEqual([
        { type: 'section', text: { type: 'mrkdwn', text: 'Failover of web: 1 of 2' } },
      ]);
      expect(plainText(m, '', NOW)).toBe('Failover of web: 1 of 2');
      expect(cardParams(m, NOW).isCard).toBe('');
      expect(dingTalkMarkdown(m, NOW).text).toBe('Failover of web: 1 of 2');
    }
  });
});

describe('the Block Kit check', () => {
  it('refuses what Slack refuses', () => {
    const text = (n: number) => ({ type: 'mrkdwn', text: 'x'.repeat(n) });
    expect(blockKitProblems(Array.from({ length: 51 }, () => ({ type: 'divider' })))).toEqual([
      'blocks: 51 blocks; the limit is 50',
    ]);
    expect(
      blockKitProblems([
        { type: 'section', text: text(3001) },
        { type: 'section', fields: Array.from({ length: 11 }, () => text(2001)) },
        { type: 'context', elements: [] },
        {
          type: 'actions',
          elements: [
            {
              type: 'button',
              action_id: 'a',
              text: { type: 'mrkdwn', text: 'Go' },
              confirm: {
                title: { type: 'plain_text', text: 'x'.repeat(101) },
                text: { type: 'plain_text', text: 'x'.repeat(301) },
                confirm: { type: 'plain_text', text: 'x'.repeat(31) },
              },
            },
            { type: 'button', action_id: 'a', text: { type: 'plain_text', text: '' } },
          ],
        },
        { type: 'rich_text' },
      ]),
    ).toEqual([
      'blocks[0].text.text: 3001 characters; the limit is 3000',
      'blocks[1].fields: 11 fields; the limit is 10',
      ...Array.from(
        { length: 11 },
        (_, j) => `blocks[1].fields[${j}].text: 2001 characters; the limit is 2000`,
      ),
      'blocks[2].elements: 1 to 10 needed',
      'blocks[3].elements[0].text.type: must be plain_text',
      'blocks[3].elements[0].confirm.title.text: 101 characters; the limit is 100',
      'blocks[3].elements[0].confirm.text.text: 301 characters; the limit is 300',
      'blocks[3].elements[0].confirm.confirm.text: 31 characters; the limit is 30',
      'blocks[3].elements[1].text.text: empty',
      'blocks[3].elements[1].action_id: a is used twice',
      'blocks[4].type: "rich_text" is not a block this bot should send',
    ]);
  });
});
