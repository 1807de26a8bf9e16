import { describe, expect, it } from 'vitest';
import { GRAMMAR, helpLines, MAX_TEXT, parse } from '../../../bot/grammar.js';
import { VERBS } from '../../../engine/contract.js';

describe('chat grammar', () => {
  it('covers every verb of the contract, once', () => {
    expect(GRAMMAR.map((s) => s.verb).sort()).toEqual([...VERBS].sort());
  });

  it('takes the words after throttle APP as the rate, for the engine to check', () => {
    expect(parse('throttle web 10MiB/s mon-fri 08:00-18:00, 50MiB/s')).toEqual({
      ok: true,
      verb: 'throttle',
      app: 'web',
      args: { rate: '10MiB/s mon-fri 08:00-18:00, 50MiB/s' },
    });
    expect(parse('throttle web default')).toEqual({
      ok: true,
      verb: 'throttle',
      app: 'web',
      args: { rate: 'default' },
    });
    expect(parse('throttle web')).toEqual({
      ok: false,
      error: '`throttle` needs a rate, like 20MiB/s, or default.',
      hint: 'Usage: throttle <app> <rate> | default',
    });
    expect(parse('throttle')).toMatchObject({ ok: false, error: '`throttle` needs an app.' });
  });

  it('takes --reason on failover and failback: every word up to the next option', () => {
    expect(parse('failover prod-web --reason zone a lost power --point 7')).toEqual({
      ok: true,
      verb: 'failover',
      app: 'prod-web',
      args: { reason: 'zone a lost power', point: 7 },
    });
    expect(parse('failback prod-web --reason="power is back"')).toEqual({
      ok: true,
      verb: 'failback',
      app: 'prod-web',
      args: { reason: 'power is back' },
    });
    expect(parse('failover prod-web \u2014reason \u201cdisk\tgone\u201d')).toEqual({
      ok: true,
      verb: 'failover',
      app: 'prod-web',
      args: { reason: 'disk gone' },
    });
  });

  it('refuses a --reason that is missing, too long, or on a verb without it', () => {
    expect(parse('failover prod-web --reason')).toMatchObject({
      ok: false,
      error: '--reason needs words saying why.',
    });
    expect(parse('failover prod-web --reason --emergency')).toMatchObject({
      ok: false,
      error: '--reason needs words saying why.',
    });
    expect(parse(`failover prod-web --reason ${'x'.repeat(301)}`)).toMatchObject({
      ok: false,
      error: 'the reason is 301 characters long; the limit is 300.',
      hint: 'Usage: failover <app> [--point P] [--emergency] [--reason WHY…] [--dry-run]',
    });
    expect(parse('drill prod-web --reason because')).toMatchObject({
      ok: false,
      error: '`drill` has no option "--reason".',
    });
  });

  it('parses each verb with its operand and flags', () => {
    expect(parse('status')).toEqual({ ok: true, verb: 'status', args: {} });
    expect(parse('status prod-web')).toEqual({
      ok: true,
      verb: 'status',
      app: 'prod-web',
      args: {},
    });
    expect(parse('drill prod-web --point 42 --keep 30m')).toEqual({
      ok: true,
      verb: 'drill',
      app: 'prod-web',
      args: { point: 42, keepMs: 1_800_000 },
    });
    expect(parse('  FAILOVER   prod-web --emergency --point=7 ')).toEqual({
      ok: true,
      verb: 'failover',
      app: 'prod-web',
      args: { emergency: true, point: 7 },
    });
    expect(parse('drill prod-web --point latest')).toEqual({
      ok: true,
      verb: 'drill',
      app: 'prod-web',
      args: {},
    });
    expect(parse('approve A-12')).toEqual({ ok: true, verb: 'approve', args: { id: 'A-12' } });
    expect(parse('reject A-12 wrong   window, retry Monday')).toEqual({
      ok: true,
      verb: 'reject',
      args: { id: 'A-12', reason: 'wrong window, retry Monday' },
    });
    expect(parse('cleanup op-3f2a')).toEqual({
      ok: true,
      verb: 'cleanup',
      args: { id: 'op-3f2a' },
    });
    expect(parse('ack AL-4')).toEqual({ ok: true, verb: 'ack', args: { id: 'AL-4' } });
    expect(parse('policy list')).toEqual({ ok: true, verb: 'policy', args: { sub: 'list' } });
    expect(parse('policy explain failover prod-web --emergency')).toEqual({
      ok: true,
      verb: 'policy',
      app: 'prod-web',
      args: { sub: 'explain', words: ['failover', 'prod-web', '--emergency'] },
    });
    expect(parse('')).toEqual({ ok: true, verb: 'help', args: {} });
    expect(parse('help drill')).toEqual({ ok: true, verb: 'help', args: { words: ['drill'] } });
  });

  it('undoes the em dash that phones and Slack make of --', () => {
    expect(parse('failover prod-web \u2014emergency')).toMatchObject({
      ok: true,
      args: { emergency: true },
    });
  });

  it('answers an unknown verb with a did-you-mean from the table', () => {
    expect(parse('falover prod-web')).toMatchObject({
      ok: false,
      error: 'Unknown command "falover". Did you mean `failover`?',
    });
    expect(parse('dril prod-web')).toMatchObject({
      ok: false,
      error: expect.stringContaining('`drill`'),
    });
    expect(parse('aprove A-1')).toMatchObject({
      ok: false,
      error: expect.stringContaining('`approve`'),
    });
    const far = parse('xyzzy');
    expect(far).toMatchObject({
      ok: false,
      error: 'Unknown command "xyzzy".',
      hint: 'Type `help` for the commands.',
    });
    expect(parse('drill prod-web --piont 3')).toMatchObject({
      ok: false,
      error: '`drill` has no option "--piont". Did you mean `--point`?',
    });
    expect(parse('policy explian drill x')).toMatchObject({
      ok: false,
      error: expect.stringContaining('`policy explain`'),
    });
    expect(parse('help falover')).toMatchObject({
      ok: false,
      error: expect.stringContaining('`failover`'),
    });
  });

  it('refuses a missing app or id with the usage line', () => {
    expect(parse('drill')).toEqual({
      ok: false,
      error: '`drill` needs an app.',
      hint: 'Usage: drill <app> [--point P] [--keep D] [--dry-run]',
    });
    expect(parse('approve')).toMatchObject({ ok: false, error: '`approve` needs an approval id.' });
    expect(parse('ack')).toMatchObject({ ok: false, error: '`ack` needs an alert id.' });
    expect(parse('policy')).toMatchObject({ ok: false });
    expect(parse('policy explain')).toMatchObject({ ok: false });
    expect(parse('drill prod-web --point')).toMatchObject({
      ok: false,
      error: expect.stringContaining('--point needs a value'),
    });
    expect(parse('drill prod-web --point x1')).toMatchObject({
      ok: false,
      error: expect.stringContaining('point id like 42'),
    });
    expect(parse('drill prod-web --keep forever')).toMatchObject({
      ok: false,
      error: expect.stringContaining('duration'),
    });
    expect(parse('failback prod-web --point 3')).toMatchObject({
      ok: false,
      error: expect.stringContaining('has no option'),
    });
  });

  it('refuses shell metacharacters as names, and extra words', () => {
    for (const text of [
      'drill prod-web;rm -rf /',
      'drill $(reboot)',
      'drill `id`',
      'status prod-web|cat',
      'drill ../../etc',
      'approve A-1;ls',
    ]) {
      const r = parse(text);
      expect(r.ok, text).toBe(false);
    }
    expect(parse('drill prod-web; rm -rf /')).toMatchObject({
      ok: false,
      error: '"prod-web;" is not an app name: app names are lower-case letters, digits and -.',
    });
    expect(parse('drill prod-web && rm -rf /')).toMatchObject({
      ok: false,
      error: 'Unexpected "&&" after `drill prod-web`.',
    });
  });

  it('refuses non-ASCII names, saying what a name may hold', () => {
    expect(parse('drill прод-веб')).toEqual({
      ok: false,
      error: '"прод-веб" is not an app name: app names are lower-case letters, digits and -.',
      hint: 'Type `status` for the apps.',
    });
    expect(parse('drill ｐｒｏｄ')).toMatchObject({ ok: false });
    expect(parse('approve Ä-1')).toMatchObject({
      ok: false,
      error: expect.stringContaining('is not an approval id'),
    });
  });

  it('refuses 10 000 characters unread, and control characters never reach a message raw', () => {
    const long = `drill ${'a'.repeat(10_000)}`;
    expect(parse(long)).toEqual({
      ok: false,
      error: `That command is ${long.length} characters long; the limit is ${MAX_TEXT}.`,
      hint: 'Type `help` for the commands.',
    });
    const r = parse('drill \u001b[31mred');
    expect(r).toMatchObject({ ok: false });
    if (!r.ok) expect(r.error).not.toContain('\u001b');
    expect(parse(`reject A-1 ${'x'.repeat(400)}`)).toMatchObject({
      ok: false,
      error: expect.stringContaining('limit is 300'),
    });
  });

  it('writes help from the same table', () => {
    const lines = helpLines();
    expect(lines).toHaveLength(GRAMMAR.length);
    expect(lines.some((l) => l.startsWith('failover <app> [--point P] [--emergency]'))).toBe(true);
    expect(helpLines('drill')).toEqual([
      'drill <app> [--point P] [--keep D] [--dry-run]',
      '  recover a copy in isolation, check it, clean up',
      '  --point P  a recovery point id (see `points <app>`) or latest',
      '  --keep D  how long the drill server is kept, like 30m or 2h',
      '  --dry-run  say what would happen; nothing starts',
    ]);
  });
});
