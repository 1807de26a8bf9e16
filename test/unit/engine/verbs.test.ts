import { describe, expect, it } from 'vitest';
import { ACTION_VERBS, VERBS } from '../../../engine/contract.js';
import { FLAGS, type FlagArgs, type FlagName } from '../../../engine/verb-flags.js';
import {
  argsProblem,
  usageOf,
  VERB_TABLE,
  type VerbSpec,
  verbSpec,
} from '../../../engine/verbs.js';

describe('the verb table', () => {
  it('is where the contract takes its verbs and which of them act', () => {
    expect(VERBS).toEqual(VERB_TABLE.map((s) => s.verb));
    expect(new Set(VERBS).size).toBe(VERBS.length);
    expect([...ACTION_VERBS]).toEqual([
      'drill',
      'failover',
      'failback',
      'approve',
      'reject',
      'cancel',
      'cleanup',
      'pause',
      'resume',
      'throttle',
      'ack',
      'continue',
      'retry',
      'skip',
      'rollback',
    ]);
    expect(verbSpec('explode')).toBeUndefined();
  });

  it('writes each usage line from the operand and the flags', () => {
    const usage = (v: string) => usageOf(verbSpec(v) as VerbSpec);
    expect(usage('drill')).toBe('drill <app> [--point P] [--keep D] [--dry-run]');
    expect(usage('failover')).toBe(
      'failover <app> [--point P] [--emergency] [--reason WHY…] [--dry-run]',
    );
    expect(usage('reject')).toBe('reject <id> [reason]');
    expect(usage('status')).toBe('status [app|plan]');
    expect(usage('cancel')).toBe('cancel <op>');
    expect(usage('policy')).toBe('policy list | policy explain <command…>');
  });

  it('gives every flag of a verb a reader, and every ranged flag its range in words', () => {
    for (const spec of VERB_TABLE as readonly VerbSpec[])
      for (const f of spec.flags ?? []) expect(FLAGS[f], `${spec.verb} ${f}`).toBeDefined();
    for (const flag of Object.values(FLAGS))
      if (flag.check) expect(flag.range, flag.arg).toMatch(/\w/);
  });
});

describe('the engine range check (argsProblem)', () => {
  const cases: [string, FlagArgs, RegExp][] = [
    ['drill', { point: 0 }, /^--point 0 is out of range: point ids are whole numbers from 1/],
    ['drill', { point: -3 }, /^--point -3 is out of range/],
    ['failover', { point: 1.5 }, /^--point 1\.5 is out of range/],
    ['drill', { keepMs: 0 }, /^--keep 0ms is out of range: it takes 1s to 7d$/],
    ['drill', { keepMs: 999 }, /^--keep 999ms is out of range/],
    ['drill', { keepMs: 8 * 86_400_000 }, /^--keep 8d is out of range: it takes 1s to 7d$/],
    ['drill', { keepMs: Number.NaN }, /^--keep NaN is out of range/],
    [
      'failover',
      { reason: 'x'.repeat(301) },
      /^the reason is 301 characters long; the limit is 300$/,
    ],
    ['reject', { reason: 'x'.repeat(301) }, /limit is 300/],
    ['failover', { keepMs: 60_000 }, /^`failover` has no option "--keep"$/],
    ['failback', { point: 3 }, /^`failback` has no option "--point"$/],
    ['pause', { dryRun: true }, /^`pause` has no option "--dry-run"$/],
  ];
  for (const [verb, args, message] of cases)
    it(`refuses ${verb} ${JSON.stringify(args).slice(0, 40)}`, () => {
      expect(argsProblem(verb, args, 'web')).toMatch(message);
    });

  it('lets the edges of each range through, and switches set to false', () => {
    expect(argsProblem('drill', { point: 1, keepMs: 1000 })).toBeUndefined();
    expect(argsProblem('drill', { point: Number.MAX_SAFE_INTEGER, keepMs: 7 * 86_400_000 })).toBe(
      undefined,
    );
    expect(argsProblem('failover', { reason: 'x'.repeat(300), emergency: true })).toBeUndefined();
    expect(argsProblem('pause', { emergency: false, dryRun: false })).toBeUndefined();
    expect(argsProblem('reject', { reason: 'wrong window' })).toBeUndefined();
  });

  it('names the app in the point remedy', () => {
    expect(argsProblem('drill', { point: 0 }, 'prod-web')).toContain('`points prod-web`');
  });

  it('reads syntax only: a reader takes any whole number, the range is left to the check', () => {
    const args: FlagArgs = {};
    expect(FLAGS['--point'].read(args, '0')).toBeUndefined();
    expect(args.point).toBe(0);
    expect(FLAGS['--keep'].read(args, '0s')).toBeUndefined();
    expect(args.keepMs).toBe(0);
    const bad: [FlagName, string, string][] = [
      ['--point', 'x1', '--point takes a point id like 42 or latest, not "x1"'],
      ['--point', '-1', '--point takes a point id like 42 or latest, not "-1"'],
      ['--keep', 'forever', '--keep takes a duration like 30m or 2h, not "forever"'],
      ['--keep', '-5m', '--keep takes a duration like 30m or 2h, not "-5m"'],
      ['--reason', '  \t ', '--reason is empty; say why in words'],
    ];
    for (const [flag, text, message] of bad) expect(FLAGS[flag].read({}, text)).toBe(message);
  });
});
