/** The `dr` command of a chat verb, generated from the engine's verb table: name, argument, options, help. */
import { type Command, Option } from 'commander';
import type { CommandArgs } from '../engine/contract.js';
import { FLAGS } from '../engine/verb-flags.js';
import { argsProblem, type Verb, type VerbSpec, verbSpec } from '../engine/verbs.js';
import { usageError } from './context.js';

function specOf(verb: Verb): VerbSpec & { cli: NonNullable<VerbSpec['cli']> } {
  const spec = verbSpec(verb);
  if (!spec?.cli) throw new Error(`the verb table gives ${verb} no dr command`); // a programming error
  return spec as VerbSpec & { cli: NonNullable<VerbSpec['cli']> };
}

/** Options of a verb's flags, as commander names them on the options object. */
function flagOptions(spec: VerbSpec): { name: keyof typeof FLAGS; option: Option }[] {
  return (spec.flags ?? []).map((name) => {
    const flag = FLAGS[name];
    const option = new Option(
      flag.cliValue ? `${name} <${flag.cliValue}>` : name,
      flag.range ? `${flag.help} (${flag.range})` : flag.help,
    );
    const fallback = spec.cli?.defaults?.[name];
    if (fallback !== undefined) option.default(fallback);
    return { name, option };
  });
}

/**
 * Adds `dr VERB` to the program as the table describes it; the caller adds the action. Every
 * verb flag, then the command line's own options (--wait, --json).
 */
export function verbCommand(program: Command, verb: Verb): Command {
  const spec = specOf(verb);
  const cmd = program.command(verb).description(spec.cli.description);
  if (spec.operand) {
    const { name, required } = spec.operand;
    cmd.argument(required ? `<${name}>` : `[${name}]`, spec.cli.operand);
  }
  for (const { option } of flagOptions(spec)) cmd.addOption(option);
  for (const o of spec.cli.options ?? []) cmd.option(o.flags, o.help);
  return cmd;
}

/**
 * The engine's arguments from the options commander parsed: each value read by the table's
 * reader, then the engine's range check (which it runs again on submit), so `dr` refuses a bad
 * value with the same words as chat, before it connects to anything.
 */
export function verbArgs(verb: Verb, opts: Record<string, unknown>, app?: string): CommandArgs {
  const spec = specOf(verb);
  const args: CommandArgs = {};
  const remedy = `see \`dr ${verb} --help\` for its options`;
  for (const { name, option } of flagOptions(spec)) {
    const value = opts[option.attributeName()];
    if (value === undefined || value === false) continue;
    const problem = FLAGS[name].read(args, value === true ? '' : String(value));
    if (problem) throw usageError(problem, remedy);
  }
  const problem = argsProblem(verb, args, app);
  if (problem) throw usageError(problem, remedy);
  return args;
}
