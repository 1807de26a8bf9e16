import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConsoleSurface } from '../../../bot/console/console-surface.js';
import { publishNotice } from '../../../bot/notice-reader.js';
import type { Command, ControlPlane } from '../../../engine/contract.js';
import { redisUnavailable, startRedis } from '../../helpers/redis-server.js';
import { missingFeature } from '../../helpers/skip.js';
import { waitFor } from '../../helpers/wait-for.js';

function run(
  plane: ControlPlane,
  lines: string[],
  person = 'alice',
  people?: { name: string; groups: string[] }[],
  allowSwitch = people !== undefined,
) {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const surface = new ConsoleSurface({
    plane,
    person,
    input,
    output,
    ...(people ? { people } : {}),
    allowSwitch,
  });
  const done = surface.run();
  for (const l of lines) input.write(`${l}\n`);
  input.end();
  return done.then(() => text);
}

describe('console surface', () => {
  it('answers each line, with buttons as the words to type', async () => {
    const seen: Command[] = [];
    const plane: ControlPlane = {
      submit: async (c) => {
        seen.push(c);
        return {
          ok: true,
          summary: 'Failover of prod-web needs 2 approvals: A-12',
          actions: [
            { kind: 'approve', label: 'Approve', words: 'approve A-12' },
            { kind: 'reject', label: 'Reject', words: 'reject A-12' },
          ],
        };
      },
    };
    const out = await run(plane, ['failover prod-web', '', 'dril x', 'exit', 'status']);
    expect(out).toContain(
      'Failover of prod-web needs 2 approvals: A-12\n  [Approve] approve A-12   [Reject] reject A-12',
    );
    expect(out).toContain('Unknown command "dril". Did you mean `drill`?');
    expect(seen).toMatchObject([
      {
        verb: 'failover',
        app: 'prod-web',
        actor: 'console:alice',
        surface: 'console',
        channel: 'console',
      },
    ]);
  });

  it('says who you are, who else you can be, and switches with `as <person>`', async () => {
    const seen: Command[] = [];
    const plane: ControlPlane = {
      submit: async (c) => {
        seen.push(c);
        return { ok: true, summary: 'ok' };
      },
    };
    const people = [
      { name: 'root', groups: ['sre-oncall'] },
      { name: 'alice', groups: ['sre-oncall'] },
      { name: 'bob', groups: ['sre-oncall'] },
    ];
    const out = await run(
      plane,
      ['whoami', 'approve A-1', 'as alice', 'approve A-1', 'as mallory', 'as', 'help', 'whoami'],
      'root',
      people,
    );
    expect(out).toContain('Lifeboat console as root (console:root).');
    expect(out).toContain(
      'Type `as <person>` to act as someone else: alice (sre-oncall), bob (sre-oncall).',
    );
    expect(out).toContain('You are root (console:root), in sre-oncall.');
    expect(out).toContain('You are alice now (console:alice)');
    expect(out).toContain(
      'No person named mallory has a console: id in dr.yaml. Use one of: root, alice, bob.',
    );
    expect(out).toContain('Usage: `as <person>`');
    expect(out).toMatch(/as <person> {4}act as someone else/);
    expect(out).toContain('You are alice (console:alice), in sre-oncall.');
    expect(seen.map((c) => [c.verb, c.actor])).toEqual([
      ['approve', 'console:root'],
      ['approve', 'console:alice'],
    ]);
  });

  it('refuses `as <person>` where switching is not allowed, and keeps acting as the login', async () => {
    const seen: Command[] = [];
    const plane: ControlPlane = {
      submit: async (c) => {
        seen.push(c);
        return { ok: true, summary: 'ok' };
      },
    };
    const people = [
      { name: 'root', groups: ['sre-oncall'] },
      { name: 'alice', groups: ['sre-oncall'] },
    ];
    const out = await run(plane, ['as alice', 'approve A-1'], 'root', people, false);
    expect(out).toContain(
      'Switching person is refused: this console acts as your login (console:root).',
    );
    expect(out).not.toContain('Type `as <person>`');
    expect(seen.map((c) => [c.verb, c.actor])).toEqual([['approve', 'console:root']]);
  });

  it('never prints terminal escapes from a reply', async () => {
    const plane: ControlPlane = {
      submit: async () => ({ ok: true, summary: 'evil \u001b[2J name' }),
    };
    const out = await run(plane, ['status']);
    expect(out).toContain('evil ?[2J name');
    expect(out).not.toContain('\u001b');
  });

  it('refuses a bad --as name', () => {
    const plane: ControlPlane = { submit: async () => ({ ok: true, summary: '' }) };
    expect(
      () =>
        new ConsoleSurface({
          plane,
          person: 'a b;rm',
          input: new PassThrough(),
          output: new PassThrough(),
        }),
    ).toThrow(/--as "a b;rm" is not a person's name/);
  });

  it.skipIf(missingFeature(redisUnavailable(), 'console-surface.test.ts'))(
    'prints notices addressed to the console while it runs',
    async () => {
      const redis = await startRedis();
      const cmd = new Redis(redis.url);
      const blocking = new Redis(redis.url);
      try {
        const input = new PassThrough();
        const output = new PassThrough();
        let text = '';
        output.on('data', (c: Buffer) => {
          text += c.toString();
        });
        const plane: ControlPlane = { submit: async () => ({ ok: true, summary: 'ok' }) };
        const surface = new ConsoleSurface({
          plane,
          person: 'bob',
          input,
          output,
          noticeRedis: blocking,
          prefix: 'c:',
        });
        const done = surface.run();
        await waitFor('the greeting', () => text.includes('Lifeboat console as bob'));
        await publishNotice(
          cmd,
          {
            kind: 'rpo.breach',
            key: 'alert:AL-4',
            targets: ['slack:C1'],
            severity: 'critical',
            summary: 'not for the console',
            time: 1,
          },
          'c:',
        );
        await publishNotice(
          cmd,
          {
            kind: 'rpo.breach',
            key: 'alert:AL-4',
            targets: ['console'],
            severity: 'critical',
            summary: 'RPO breach: prod-web is 94 s behind',
            time: 2,
            actions: [{ kind: 'ack', label: 'Acknowledge', words: 'ack AL-4' }],
          },
          'c:',
        );
        await waitFor('the alert', () =>
          text.includes(
            '[rpo.breach] !! RPO breach: prod-web is 94 s behind\n  [Acknowledge] ack AL-4',
          ),
        );
        expect(text).not.toContain('not for the console');
        input.end();
        await done;
        expect(await cmd.xinfo('GROUPS', 'c:notices')).toEqual([]);
      } finally {
        cmd.disconnect();
        blocking.disconnect();
        await redis.stop();
      }
    },
  );
});

describe('console surface as a ChatSurface', () => {
  it('prints a notice, its update and an approval, each with its buttons as words', async () => {
    const output = new PassThrough();
    let text = '';
    output.on('data', (c: Buffer) => {
      text += c.toString();
    });
    const surface = new ConsoleSurface({
      plane: { submit: async () => ({ ok: true, summary: 'ok' }) },
      person: 'alice',
      input: new PassThrough(),
      output,
    });
    expect(surface.name).toBe('console');
    expect(surface.routes).toEqual([]);
    await surface.start(); // no notice connection: nothing to start, and no error
    const notice = {
      id: '1-0',
      kind: 'approval.requested' as const,
      key: 'op:op-1',
      targets: ['console'],
      severity: 'warning' as const,
      summary: 'failover of web needs 1 approval',
      actions: [{ kind: 'approve' as const, label: 'Approve', words: 'approve A-1' }],
      time: 1,
    };
    await surface.askApproval(notice);
    await surface.updateMessage('console', 'ref', { ...notice, summary: 'approved by bob' });
    await surface.postNotice({ ...notice, kind: 'rpo.breach', summary: 'web is behind' });
    await surface.stop();
    expect(text).toContain('failover of web needs 1 approval');
    expect(text).toContain('approve A-1');
    expect(text).toContain('approved by bob');
    expect(text).toContain('web is behind');
  });
});
