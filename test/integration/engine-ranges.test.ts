// The engine is where flag ranges are checked: a command from any surface, parsed or not, gets the
// same refusal chat and `dr` give, and nothing is decided, queued or audited as a decision.
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { answer } from '../../bot/answer.js';
import { parse } from '../../bot/grammar.js';
import { controlKeys } from '../../engine/contract.js';
import { command } from '../helpers/engine-home.js';
import { type EngineRig, startEngineRig } from '../helpers/engine-rig.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();

describe('flag ranges, checked by the engine', () => {
  let rig: EngineRig | undefined;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    rig = await startEngineRig();
  });
  afterEach(async () => {
    await rig?.stop();
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ['drill web', { point: 0 }, 'drill web --point 0'],
    ['failover web', { point: 0 }, 'failover web --point 0'],
    ['drill web', { keepMs: 0 }, 'drill web --keep 0s'],
    ['drill web', { keepMs: 8 * 86_400_000 }, 'drill web --keep 8d'],
    ['failover web', { reason: 'x'.repeat(301) }, `failover web --reason ${'x'.repeat(301)}`],
    ['failover web', { keepMs: 60_000 }, 'failover web --keep 1m'],
  ];

  it('refuses what chat refuses, in the same words, for a command no parser saw', async () => {
    for (const [words, args, typed] of cases) {
      const reply = await (rig as EngineRig).engine.submit(
        command('slack:UALICE', words, { surface: 'scheduler', args }),
      );
      const chat = parse(typed);
      expect(chat.ok, typed).toBe(false);
      if (chat.ok) continue;
      expect(reply, typed).toMatchObject({ ok: false, private: true });
      expect(`${reply.summary}.`, typed).toBe(chat.error);
      expect(reply.decision, typed).toBeUndefined();
    }
    // Nothing reached the audit log: the command was refused before it was judged.
    const { conn, prefix } = rig as EngineRig;
    expect(await conn.xlen(controlKeys(prefix).audit)).toBe(0);
  });

  it('a console user typing an out-of-range value is answered at once, with the usage', async () => {
    const r = await answer((rig as EngineRig).engine, {
      text: 'drill web --point 0',
      actor: 'console:alice',
      surface: 'console',
      id: 'c-1',
    });
    expect(r).toMatchObject({
      ok: false,
      private: true,
      summary: '--point 0 is out of range: point ids are whole numbers from 1 (see `points web`).',
      details: ['Usage: drill <app> [--point P] [--keep D] [--dry-run]'],
    });
  });
});
