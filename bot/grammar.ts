/** The chat grammar, identical on every surface: the engine's verb table and its parser, plus help. */
import { commandWords, type Parsed, parseCommandWords } from '../engine/parse-command-words.js';
import { FLAGS } from '../engine/verb-flags.js';
import { usageOf, VERB_TABLE, type VerbSpec, verbSpec } from '../engine/verbs.js';

/*
 * Parsing, `help` and the "did you mean" hints all come from the engine's one verb table
 * (engine/verbs.ts), which also makes the `dr` commands, so none of them can drift apart.
 */

export type { Parsed, VerbSpec };

/** Every verb as chat knows it, in help order. */
export const GRAMMAR: readonly VerbSpec[] = VERB_TABLE;

/** Longest text a surface passes to the parser; longer input is refused unread. */
export const MAX_TEXT = 1000;

/** Words of a command: whitespace-split, with the em/en dashes phones and Slack put in `--flag` undone. */
export const words = commandWords;

/** Parses the words of a command (without the surface's `/dr` or `dr`). */
export function parse(text: string): Parsed {
  if (text.length > MAX_TEXT) {
    return {
      ok: false,
      error: `That command is ${text.length} characters long; the limit is ${MAX_TEXT}.`,
      hint: 'Type `help` for the commands.',
    };
  }
  return parseCommandWords(commandWords(text));
}

/** `help`, or `help <verb>`: lines from the verb table. */
export function helpLines(verb?: string): string[] {
  const spec = verb === undefined ? undefined : verbSpec(verb);
  if (spec) {
    const lines = [usageOf(spec), `  ${spec.summary}`];
    for (const f of spec.flags ?? []) {
      const flag = FLAGS[f];
      lines.push(`  ${f}${flag.value ? ` ${flag.value}` : ''}  ${flag.help}`);
    }
    return lines;
  }
  const usages = GRAMMAR.map(usageOf);
  const width = Math.max(...usages.map((u) => u.length));
  return GRAMMAR.map((s, i) => `${(usages[i] as string).padEnd(width)}  ${s.summary}`);
}
