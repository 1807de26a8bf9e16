import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { ChatSurface, SurfaceAdapter } from '../../../bot/chat-surface.js';
import { startSurfaces } from '../../../bot/start-surfaces.js';
import type { ControlPlane } from '../../../engine/contract.js';

const plane: ControlPlane = {
  submit: async () => ({ ok: true, summary: 'ok' }),
};

/** A surface that records what happened to it. */
function fakeSurface(name: string, events: string[], failStart = false): ChatSurface {
  return {
    name,
    routes: name === 'web' ? [() => false] : [],
    start: async () => {
      if (failStart) throw new Error(`${name} refused`);
      events.push(`start ${name}`);
    },
    stop: async () => {
      events.push(`stop ${name}`);
    },
    postNotice: async () => undefined,
    updateMessage: async () => undefined,
    askApproval: async () => undefined,
  };
}

function adapter(name: string, events: string[], opts: { off?: string; failStart?: boolean } = {}) {
  return {
    title: name.toUpperCase(),
    configure: () =>
      opts.off
        ? { off: opts.off }
        : {
            line: 'on (fake)',
            create: async ({ connect }) => {
              await connect(`conn-${name}`);
              return fakeSurface(name, events, opts.failStart);
            },
          },
  } satisfies SurfaceAdapter;
}

function connector(events: string[]) {
  return async (name: string) =>
    ({ disconnect: () => events.push(`disconnect ${name}`) }) as unknown as Redis;
}

describe('startSurfaces', () => {
  it('starts each adapter that is on, says why the others are off, and stops them in reverse', async () => {
    const events: string[] = [];
    const surfaces = await startSurfaces({
      plane,
      connect: connector(events),
      env: {},
      adapters: [
        adapter('chat', events),
        adapter('mail', events, { off: 'MAIL_TOKEN is not set' }),
        adapter('web', events),
      ],
    });
    expect(surfaces.lines).toEqual([
      'CHAT: on (fake)',
      'MAIL: off (MAIL_TOKEN is not set)',
      'WEB: on (fake)',
    ]);
    expect(surfaces.started.map((s) => s.name)).toEqual(['chat', 'web']);
    expect(surfaces.routes).toHaveLength(1);
    await surfaces.close();
    expect(events).toEqual([
      'start chat',
      'start web',
      'stop web',
      'stop chat',
      'disconnect conn-chat',
      'disconnect conn-web',
    ]);
  });

  it('stops what it started and closes every connection when a later surface fails to start', async () => {
    const events: string[] = [];
    const started = startSurfaces({
      plane,
      connect: connector(events),
      env: {},
      adapters: [adapter('chat', events), adapter('web', events, { failStart: true })],
    });
    await expect(started).rejects.toThrow('web refused');
    expect(events).toEqual([
      'start chat',
      'stop chat',
      'disconnect conn-chat',
      'disconnect conn-web',
    ]);
  });

  it('leaves Slack and DingTalk off without their credentials', async () => {
    const surfaces = await startSurfaces({ plane, connect: connector([]), env: {} });
    expect(surfaces.lines).toEqual([
      'Slack: off (SLACK_BOT_TOKEN is not set)',
      'DingTalk: off (DINGTALK_CLIENT_ID is not set)',
    ]);
    await surfaces.close();
  });
});
