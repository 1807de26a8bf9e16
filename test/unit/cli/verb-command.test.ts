import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parse } from '../../../bot/grammar.js';
import { buildProgram } from '../../../cli/main.js';
import { dr } from '../../helpers/lifeboat-home.js';

/** Each `dr` command of a chat verb: its argument and its options with their defaults. */
async function shape(name: string) {
  const program = await buildProgram({ code: 0 }, name);
  const cmd = program.commands.find((c) => c.name() === name) as Command;
  return {
    args: cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)),
    options: cmd.options.map((o) =>
      o.defaultValue === undefined ? o.flags : `${o.flags}=${String(o.defaultValue)}`,
    ),
    description: cmd.description(),
  };
}

describe('dr commands generated from the verb table', () => {
  it('keep every name, argument, option and default they had', async () => {
    expect(await shape('drill')).toMatchObject({
      args: ['<app>'],
      options: ['--point <id>=latest', '--keep <duration>=30m', '--dry-run', '--wait', '--json'],
    });
    expect(await shape('failover')).toMatchObject({
      args: ['<app>'],
      options: [
        '--point <id>=latest',
        '--emergency',
        '--reason <why>',
        '--dry-run',
        '--wait',
        '--json',
      ],
    });
    expect(await shape('failback')).toMatchObject({
      args: ['<app>'],
      options: ['--emergency', '--reason <why>', '--dry-run', '--wait', '--json'],
    });
    expect(await shape('cancel')).toMatchObject({ args: ['<op>'], options: ['--json'] });
    expect(await shape('cleanup')).toMatchObject({ args: ['<op>'], options: ['--wait', '--json'] });
    expect(await shape('pause')).toMatchObject({ args: ['<app>'], options: ['--json'] });
    expect(await shape('resume')).toMatchObject({ args: ['<app>'], options: ['--json'] });
    expect(await shape('points')).toMatchObject({ args: ['<app>'], options: ['--json'] });
    expect(await shape('status')).toMatchObject({ args: ['[app]'], options: ['--json'] });
  });

  it("show each flag's help and range from the table, as chat's help does", async () => {
    const help = await dr(['drill', '--help']);
    expect(help.code).toBe(0);
    const text = help.out.replace(/\s+/g, ' ');
    expect(text).toContain(
      '--keep <duration> how long the drill server is kept, like 30m or 2h (1s to 7d)',
    );
    expect(text).toContain('--point <id> a recovery point id (see `points <app>`) or latest');
    expect(text).toContain(
      'recover an app in isolation, check it, keep it for --keep, then clean up',
    );
  });
});

describe('the same bad value gets the same answer from dr and from chat', () => {
  const cases: [string, string][] = [
    ['drill web', '--point 0'],
    ['drill web', '--point x1'],
    ['drill web', '--point -1'],
    ['failover web', '--point 0'],
    ['drill web', '--keep 0s'],
    ['drill web', '--keep 500ms'],
    ['drill web', '--keep 8d'],
    ['drill web', '--keep forever'],
    ['failover web', `--reason ${'x'.repeat(301)}`],
  ];
  for (const [command, flag] of cases)
    it(`${command} ${flag.slice(0, 20)}`, async () => {
      const chat = parse(`${command} ${flag}`);
      expect(chat.ok).toBe(false);
      if (chat.ok) return;
      const message = chat.error.replace(/\.$/, '');
      // `dr` refuses before it reads a home or connects to Redis: a usage error, exit 2.
      const [name, space] = [flag.slice(0, flag.indexOf(' ')), flag.indexOf(' ')];
      const r = await dr([...command.split(' '), name, flag.slice(space + 1)], {
        DR_HOME: '/nonexistent/lifeboat-home',
      });
      expect(r.code).toBe(2);
      expect(r.err).toContain(`dr: ${message}. To resolve,`);
    });

  it('a blank reason is "empty" on both', async () => {
    const chat = parse('failover web --reason=""');
    expect(chat).toMatchObject({ ok: false, error: '--reason is empty; say why in words.' });
    const r = await dr(['failover', 'web', '--reason', '  '], { DR_HOME: '/nonexistent/x' });
    expect(r.code).toBe(2);
    expect(r.err).toContain('dr: --reason is empty; say why in words.');
  });
});
