/** The one parser of a command's words (chat, console, `policy explain`), driven by the verb table. */
import { isName } from '../core/names.js';
import { closest } from './closest.js';
import type { CommandArgs } from './contract.js';
import { FLAGS, type FlagName, reasonProblem, shown } from './verb-flags.js';
import { argsProblem, usageOf, VERB_TABLE, type Verb, type VerbSpec, verbSpec } from './verbs.js';

export type Parsed =
  | { ok: true; verb: Verb; app?: string; args: CommandArgs }
  | { ok: false; error: string; hint?: string };

/** Approval, operation and alert ids as people type them. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** Words of a command: whitespace-split, with the em/en dashes phones and Slack put in `--flag` undone. */
export function commandWords(text: string): string[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => w.replace(/^[\u2013\u2014]/, '--'));
}

const usageHint = (spec: VerbSpec) => `Usage: ${usageOf(spec)}`;

/**
 * Parses the words of a command (without the surface's `/dr` or `dr`): the verb, its operand and
 * flags by the table, then the engine's range check, so a bad value is refused with the usage.
 */
export function parseCommandWords(ws: readonly string[]): Parsed {
  const first = ws[0];
  if (first === undefined) return { ok: true, verb: 'help', args: {} };
  const verb = first.toLowerCase();
  const spec = verbSpec(verb);
  if (!spec) return noSuchVerb('Unknown command', first, verb);
  const parsed = parseVerb(spec, ws.slice(1));
  if (!parsed.ok) return parsed;
  const problem = argsProblem(parsed.verb, parsed.args, parsed.app);
  return problem ? { ok: false, error: `${problem}.`, hint: usageHint(spec) } : parsed;
}

/** "WHAT `word`." with the closest verb to suggest, if one is close enough. */
function noSuchVerb(what: string, word: string, lowered: string): Parsed {
  const guess = closest(
    lowered,
    VERB_TABLE.map((s) => s.verb),
  );
  return {
    ok: false,
    error: `${what} ${shown(word)}.${guess ? ` Did you mean \`${guess}\`?` : ''}`,
    hint: 'Type `help` for the commands.',
  };
}

function parseVerb(spec: VerbSpec, rest: string[]): Parsed {
  const verb = spec.verb as Verb;
  const args: CommandArgs = {};
  if (verb === 'help') {
    const topic = rest[0]?.toLowerCase();
    if (topic !== undefined) {
      if (!verbSpec(topic)) return noSuchVerb('No command', topic, topic);
      args.words = [topic];
    }
    return { ok: true, verb: 'help', args };
  }
  if (spec.subs) return parseSubs(spec, rest);

  let app: string | undefined;
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i] as string;
    if (word.startsWith('--') && spec.rest !== 'reason') {
      const [name, inline] = word.split('=', 2) as [string, string | undefined];
      const allowed = spec.flags ?? [];
      if (!allowed.includes(name as FlagName)) {
        const guess = closest(name, allowed);
        return {
          ok: false,
          error: `\`${verb}\` has no option ${shown(name)}.${guess ? ` Did you mean \`${guess}\`?` : ''}`,
          hint: usageHint(spec),
        };
      }
      const flag = FLAGS[name as FlagName];
      let value = inline ?? '';
      if (flag.words) {
        const taken: string[] = inline === undefined ? [] : [inline];
        while (i + 1 < rest.length && !(rest[i + 1] as string).startsWith('--'))
          taken.push(rest[++i] as string);
        if (taken.length === 0) return missingValue(spec, name as FlagName);
        value = taken.join(' ');
      } else if (flag.value !== undefined && inline === undefined) {
        const next = rest[i + 1];
        if (next === undefined || next.startsWith('--'))
          return missingValue(spec, name as FlagName);
        value = next;
        i++;
      }
      const problem = flag.read(args, value);
      if (problem) return { ok: false, error: `${problem}.`, hint: usageHint(spec) };
      continue;
    }
    positional.push(word);
  }

  const operand = spec.operand;
  const first = positional[0];
  if (operand) {
    if (first === undefined) {
      if (operand.required) {
        return {
          ok: false,
          error: `\`${verb}\` needs ${operand.kind === 'app' ? 'an app' : `an ${operand.name === 'id' ? 'approval' : operand.name} id`}.`,
          hint: usageHint(spec),
        };
      }
    } else if (operand.kind === 'app') {
      if (!isName('app', first)) {
        return {
          ok: false,
          error: `${shown(first)} is not an app name: app names are lower-case letters, digits and -.`,
          hint: 'Type `status` for the apps.',
        };
      }
      app = first;
    } else {
      if (!ID.test(first)) {
        return {
          ok: false,
          error: `${shown(first)} is not ${operand.name === 'id' ? 'an approval' : `an ${operand.name}`} id (letters, digits, - and _ only).`,
          hint: usageHint(spec),
        };
      }
      args.id = first;
    }
  }
  const extra = positional.slice(operand && first !== undefined ? 1 : 0);
  if (spec.rest === 'rate') {
    // The words are the cap as written; the engine (submitThrottle) reads and checks them.
    if (app !== undefined && extra.length === 0)
      return {
        ok: false,
        error: `\`${verb}\` needs a rate, like 20MiB/s, or default.`,
        hint: usageHint(spec),
      };
    const rate = extra
      .join(' ')
      .replace(/[\p{Cc}]/gu, ' ')
      .trim();
    if (rate.length > 300)
      return {
        ok: false,
        error: `The rate is ${rate.length} characters long; the limit is 300.`,
        hint: usageHint(spec),
      };
    if (rate) args.rate = rate;
  } else if (extra.length > 0) {
    if (spec.rest !== 'reason') {
      return {
        ok: false,
        error: `Unexpected ${shown(extra[0] as string)} after \`${[verb, ...positional.slice(0, positional.length - extra.length)].join(' ')}\`.`,
        hint: usageHint(spec),
      };
    }
    const reason = extra
      .join(' ')
      .replace(/[\p{Cc}]/gu, ' ')
      .trim();
    const problem = reasonProblem(reason);
    if (problem) return { ok: false, error: `${capital(problem)}.`, hint: usageHint(spec) };
    args.reason = reason;
  }
  return app === undefined ? { ok: true, verb, args } : { ok: true, verb, app, args };
}

function missingValue(spec: VerbSpec, name: FlagName): Parsed {
  const flag = FLAGS[name];
  return {
    ok: false,
    error: `${name} ${flag.missing ?? `needs a value (${flag.help})`}.`,
    hint: usageHint(spec),
  };
}

const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** A verb with sub-commands: `policy list`, `policy explain <command…>`. */
function parseSubs(spec: VerbSpec, rest: string[]): Parsed {
  const verb = spec.verb as Verb;
  const sub = rest[0]?.toLowerCase();
  const subs = spec.subs ?? [];
  if (sub === undefined) {
    return {
      ok: false,
      error: `\`${verb}\` needs ${subs.map((s) => (s === 'explain' ? '`explain <command…>`' : `\`${s}\``)).join(' or ')}.`,
      hint: usageHint(spec),
    };
  }
  if (!subs.includes(sub as 'list')) {
    const guess = closest(sub, subs);
    return {
      ok: false,
      error: `\`${verb}\` has no ${shown(sub)}.${guess ? ` Did you mean \`${verb} ${guess}\`?` : ''}`,
      hint: usageHint(spec),
    };
  }
  if (sub === 'list') {
    if (rest.length > 1) {
      return {
        ok: false,
        error: `Unexpected ${shown(rest[1] as string)} after \`${verb} list\`.`,
        hint: usageHint(spec),
      };
    }
    return { ok: true, verb, args: { sub: 'list' } };
  }
  const explained = rest.slice(1);
  if (explained.length === 0) {
    return {
      ok: false,
      error: `\`${verb} explain\` needs a command, like \`${verb} explain failover prod-web\`.`,
      hint: usageHint(spec),
    };
  }
  // The explained command must itself be well formed, so the explanation is about something real.
  const inner = parseCommandWords(explained);
  if (!inner.ok) return inner;
  if (inner.verb === 'policy' || inner.verb === 'help') {
    return {
      ok: false,
      error: `\`${verb} explain\` explains action commands, not \`${inner.verb}\`.`,
      hint: usageHint(spec),
    };
  }
  const args: CommandArgs = { sub: 'explain', words: explained };
  return inner.app === undefined
    ? { ok: true, verb, args }
    : { ok: true, verb, app: inner.app, args };
}
