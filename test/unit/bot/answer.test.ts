import { describe, expect, it } from 'vitest';
import { answer } from '../../../bot/answer.js';
import type { Command, ControlPlane, Reply } from '../../../engine/contract.js';

/** A control plane that records what it was asked and answers from a table. */
function recordingPlane(
  reply: (c: Command) => Reply = (c) => ({ ok: true, summary: `did ${c.verb}` }),
) {
  const seen: Command[] = [];
  const plane: ControlPlane = {
    submit: async (c) => {
      seen.push(c);
      return reply(c);
    },
  };
  return { plane, seen };
}

const heard = {
  actor: 'console:alice',
  surface: 'console' as const,
  channel: 'console',
  id: 'c-1',
};

describe('answer', () => {
  it('turns words into one Command for the control plane', async () => {
    const { plane, seen } = recordingPlane();
    const reply = await answer(
      plane,
      { ...heard, text: 'drill prod-web --point 4' },
      { now: () => 0 },
    );
    expect(reply).toEqual({ ok: true, summary: 'did drill' });
    expect(seen).toEqual([
      {
        id: 'c-1',
        actor: 'console:alice',
        surface: 'console',
        channel: 'console',
        verb: 'drill',
        app: 'prod-web',
        args: { point: 4 },
        at: '1970-01-01T00:00:00.000Z',
      },
    ]);
  });

  it('answers help and bad input itself, privately, with the surface prefix', async () => {
    const { plane, seen } = recordingPlane();
    const help = await answer(plane, { ...heard, surface: 'slack', text: 'help' });
    expect(help.summary).toBe('Lifeboat commands (type `/dr <command>`):');
    expect(help.details?.length).toBeGreaterThan(10);
    expect(help.private).toBe(true);
    const bad = await answer(plane, { ...heard, surface: 'dingtalk', text: 'falover prod-web' });
    expect(bad).toEqual({
      ok: false,
      summary: 'Unknown command "falover". Did you mean `failover`?',
      details: ['Type `dr help` for the commands.'],
      private: true,
    });
    expect(seen).toEqual([]);
  });

  it('turns a failing control plane into a reply, not a crash', async () => {
    const plane: ControlPlane = {
      submit: async () => {
        throw new Error('Redis is unreachable');
      },
    };
    const reply = await answer(plane, { ...heard, text: 'status' });
    expect(reply.ok).toBe(false);
    expect(reply.summary).toContain('Redis is unreachable');
  });
});
