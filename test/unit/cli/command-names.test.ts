import { describe, expect, it } from 'vitest';
import { COMMAND_NAMES } from '../../../cli/command-names.js';
import { buildProgram } from '../../../cli/main.js';

describe('the command table', () => {
  it('names every command the modules define, in help order', async () => {
    const program = await buildProgram({ code: 0 });
    expect(program.commands.map((c) => c.name())).toEqual(COMMAND_NAMES);
  });

  it('loads, for one command, the module that defines it and only that', async () => {
    for (const name of COMMAND_NAMES) {
      const program = await buildProgram({ code: 0 }, name);
      const names = program.commands.map((c) => c.name());
      expect(names).toContain(name);
      expect(names.length).toBeLessThanOrEqual(3);
    }
  });
});
