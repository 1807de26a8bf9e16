import { checkName, isName } from '../core/names.js';
import { parseDuration } from '../core/units.js';
import type { CommandArgs, Verb } from '../engine/contract.js';
import { closest } from './closest.js';

/**
 * The chat grammar, identical on every surface. This one table drives parsing, `help` and the
 * "did you mean" hints, so the three cannot drift apart.
 */
export interface VerbSpec {
  verb: Verb;
  /** What `help` shows, e.g. `drill <app> [--point P] [--keep D]`. */
  usage: string;
  summary: string;
  /** The first word after the verb: an app name, an approval/operation/alert id, or nothing. */
  operand?: { kind: 'app' | 'id'; required: boolean; name: string };
  /** Flags this verb accepts. */
  flags?: readonly FlagName[];
  /**
   * Free words after the operand: `reject A-12 wrong window` (reason), `throttle web 10MiB/s
   * 08:00-18:00, 50MiB/s` (rate, checked by the engine), `policy explain …` (words).
   */
  rest?: 'reason' | 'rate';
  /** Sub-commands (policy list | explain). */
  subs?: readonly ('list' | 'explain')[];
}

type FlagName = '--point' | '--keep' | '--emergency' | '--dry-run' | '--reason';

interface FlagSpec {
  /** The argument's name in usage, or undefined for a switch. */
  value?: string;
  help: string;
  apply: (args: CommandArgs, value: string) => string | undefined;
}

const FLAGS: Record<FlagName, FlagSpec> = {
  '--point': {
    value: 'P',
    help: 'a recovery point id (see `points <app>`) or latest',
    apply: (args, value) => {
      if (value === 'latest') return undefined;
      if (!isName('point', value))
        return `--point takes a point id like 42 or latest, not "${value}"`;
      args.point = checkName('point', value) as number;
      return undefined;
    },
  },
  '--keep': {
    value: 'D',
    help: 'how long the drill server is kept, like 30m or 2h',
    apply: (args, value) => {
      const ms = /^\d/.test(value) ? parseDuration(value) : undefined;
      if (ms === undefined || ms <= 0)
        return `--keep takes a duration like 30m or 2h, not "${value}"`;
      args.keepMs = ms;
      return undefined;
    },
  },
  '--emergency': {
    help: 'act outside the usual rules where a policy allows it',
    apply: (args) => {
      args.emergency = true;
      return undefined;
    },
  },
  '--dry-run': {
    help: 'say what would happen; nothing starts',
    apply: (args) => {
      args.dryRun = true;
      return undefined;
    },
  },
  '--reason': {
    value: 'WHY',
    help: 'why you ask, in words (up to the next option); shown on the approval card',
    apply: (args, value) => {
      const reason = value
        .replace(/[\p{Cc}]/gu, ' ')
        .replace(/^(["'\u201c\u2018])(.*)(["'\u201d\u2019])$/su, '$2')
        .replace(/\s+/g, ' ')
        .trim();
      if (reason === '') return '--reason needs words saying why';
      if (reason.length > MAX_REASON)
        return `the reason is ${reason.length} characters long; the limit is ${MAX_REASON}`;
      args.reason = reason;
      return undefined;
    },
  },
};

/** Flags whose value is every word up to the next option, not one word. */
const WORDS_FLAGS: readonly FlagName[] = ['--reason'];

const app = (required: boolean) => ({ kind: 'app' as const, required, name: 'app' });
const id = (name: string) => ({ kind: 'id' as const, required: true, name });

export const GRAMMAR: readonly VerbSpec[] = [
  { verb: 'help', usage: 'help [verb]', summary: 'this list, or one verb in detail' },
  {
    verb: 'status',
    usage: 'status [app]',
    summary: 'replication state and RPO now',
    operand: app(false),
  },
  {
    verb: 'points',
    usage: 'points <app>',
    summary: 'recovery points of an app',
    operand: app(true),
  },
  {
    verb: 'drill',
    usage: 'drill <app> [--point P] [--keep D] [--dry-run]',
    summary: 'recover a copy in isolation, check it, clean up',
    operand: app(true),
    flags: ['--point', '--keep', '--dry-run'],
  },
  {
    verb: 'failover',
    usage: 'failover <app> [--point P] [--emergency] [--reason WHY…] [--dry-run]',
    summary: 'run the app from the DR site',
    operand: app(true),
    flags: ['--point', '--emergency', '--reason', '--dry-run'],
  },
  {
    verb: 'failback',
    usage: 'failback <app> [--emergency] [--reason WHY…] [--dry-run]',
    summary: 'move the app back to its source',
    operand: app(true),
    flags: ['--emergency', '--reason', '--dry-run'],
  },
  {
    verb: 'approve',
    usage: 'approve <id>',
    summary: 'approve a pending request',
    operand: id('id'),
  },
  {
    verb: 'reject',
    usage: 'reject <id> [reason]',
    summary: 'reject a pending request',
    operand: id('id'),
    rest: 'reason',
  },
  {
    verb: 'cancel',
    usage: 'cancel <op>',
    summary: 'cancel a running operation',
    operand: id('op'),
  },
  {
    verb: 'cleanup',
    usage: 'cleanup <op>',
    summary: 'remove a drill server now',
    operand: id('op'),
  },
  {
    verb: 'pause',
    usage: 'pause <app>',
    summary: 'pause replication of an app',
    operand: app(true),
  },
  {
    verb: 'resume',
    usage: 'resume <app>',
    summary: 'resume replication of an app',
    operand: app(true),
  },
  {
    verb: 'throttle',
    usage: 'throttle <app> <rate> | default',
    summary:
      "cap an app's replication bandwidth, like 20MiB/s or `10MiB/s mon-fri 08:00-18:00, 50MiB/s`",
    operand: app(true),
    rest: 'rate',
  },
  { verb: 'history', usage: 'history [app]', summary: 'recent operations', operand: app(false) },
  { verb: 'ack', usage: 'ack <alert>', summary: 'acknowledge an alert', operand: id('alert') },
  {
    verb: 'policy',
    usage: 'policy list | policy explain <command…>',
    summary: 'the policies in force, or why a command would be allowed',
    subs: ['list', 'explain'],
  },
];

/** Longest text a surface passes to the parser; longer input is refused unread. */
export const MAX_TEXT = 1000;
const MAX_REASON = 300;
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export type Parsed =
  | { ok: true; verb: Verb; app?: string; args: CommandArgs }
  | { ok: false; error: string; hint?: string };

const specOf = new Map(GRAMMAR.map((s) => [s.verb, s]));

/** Words of a command: whitespace-split, with the em/en dashes phones and Slack put in `--flag` undone. */
export function words(text: string): string[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => w.replace(/^[\u2013\u2014]/, '--'));
}

/** A word for an error message: quoted, control characters shown, cut short. */
function shown(word: string): string {
  const clean = [...word].map((c) => (/[\p{Cc}]/u.test(c) ? '?' : c)).join('');
  return JSON.stringify(clean.length > 40 ? `${clean.slice(0, 40)}…` : clean);
}

function usageOf(spec: VerbSpec): string {
  return `Usage: ${spec.usage}`;
}

/** Parses the words of a command (without the surface's `/dr` or `dr`). */
export function parse(text: string): Parsed {
  if (text.length > MAX_TEXT) {
    return {
      ok: false,
      error: `That command is ${text.length} characters long; the limit is ${MAX_TEXT}.`,
      hint: 'Type `help` for the commands.',
    };
  }
  const ws = words(text);
  const first = ws[0];
  if (first === undefined) return { ok: true, verb: 'help', args: {} };
  const verb = first.toLowerCase();
  const spec = specOf.get(verb as Verb);
  if (!spec) return noSuchVerb('Unknown command', first, verb);
  return parseVerb(spec, ws.slice(1));
}

/** "WHAT `word`." with the closest verb to suggest, if one is close enough. */
function noSuchVerb(what: string, word: string, lowered: string): Parsed {
  const guess = closest(
    lowered,
    GRAMMAR.map((s) => s.verb),
  );
  return {
    ok: false,
    error: `${what} ${shown(word)}.${guess ? ` Did you mean \`${guess}\`?` : ''}`,
    hint: 'Type `help` for the commands.',
  };
}

function parseVerb(spec: VerbSpec, rest: string[]): Parsed {
  const args: CommandArgs = {};
  if (spec.verb === 'help') {
    const topic = rest[0]?.toLowerCase();
    if (topic !== undefined) {
      if (!specOf.has(topic as Verb)) return noSuchVerb('No command', topic, topic);
      args.words = [topic];
    }
    return { ok: true, verb: 'help', args };
  }
  if (spec.subs) return parsePolicy(spec, rest);

  let app: string | undefined;
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i] as string;
    if (word.startsWith('--') && spec.rest === undefined) {
      const [name, inline] = word.split('=', 2) as [string, string | undefined];
      const allowed = spec.flags ?? [];
      if (!allowed.includes(name as FlagName)) {
        const guess = closest(name, allowed);
        return {
          ok: false,
          error: `\`${spec.verb}\` has no option ${shown(name)}.${guess ? ` Did you mean \`${guess}\`?` : ''}`,
          hint: usageOf(spec),
        };
      }
      const flag = FLAGS[name as FlagName];
      let value = inline ?? '';
      if (WORDS_FLAGS.includes(name as FlagName)) {
        const taken: string[] = inline === undefined ? [] : [inline];
        while (i + 1 < rest.length && !(rest[i + 1] as string).startsWith('--'))
          taken.push(rest[++i] as string);
        value = taken.join(' ');
      } else if (flag.value !== undefined && inline === undefined) {
        const next = rest[i + 1];
        if (next === undefined || next.startsWith('--')) {
          return { ok: false, error: `${name} needs a value (${flag.help}).`, hint: usageOf(spec) };
        }
        value = next;
        i++;
      }
      const problem = flag.apply(args, value);
      if (problem) return { ok: false, error: `${problem}.`, hint: usageOf(spec) };
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
          error: `\`${spec.verb}\` needs ${operand.kind === 'app' ? 'an app' : `an ${operand.name === 'id' ? 'approval' : operand.name} id`}.`,
          hint: usageOf(spec),
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
          hint: usageOf(spec),
        };
      }
      args.id = first;
    }
  }
  const extra = positional.slice(operand && first !== undefined ? 1 : 0);
  if (spec.rest === 'rate') {
    if (app !== undefined && extra.length === 0) {
      return {
        ok: false,
        error: `\`${spec.verb}\` needs a rate, like 20MiB/s, or default.`,
        hint: usageOf(spec),
      };
    }
    const rate = extra
      .join(' ')
      .replace(/[\p{Cc}]/gu, ' ')
      .trim();
    if (rate.length > MAX_REASON) {
      return {
        ok: false,
        error: `The rate is ${rate.length} characters long; the limit is ${MAX_REASON}.`,
        hint: usageOf(spec),
      };
    }
    if (rate) args.rate = rate;
  } else if (extra.length > 0) {
    if (spec.rest === 'reason') {
      const reason = extra
        .join(' ')
        .replace(/[\p{Cc}]/gu, ' ')
        .trim();
      if (reason.length > MAX_REASON) {
        return {
          ok: false,
          error: `The reason is ${reason.length} characters long; the limit is ${MAX_REASON}.`,
          hint: usageOf(spec),
        };
      }
      args.reason = reason;
    } else {
      return {
        ok: false,
        error: `Unexpected ${shown(extra[0] as string)} after \`${[spec.verb, ...positional.slice(0, positional.length - extra.length)].join(' ')}\`.`,
        hint: usageOf(spec),
      };
    }
  }
  return app === undefined
    ? { ok: true, verb: spec.verb, args }
    : { ok: true, verb: spec.verb, app, args };
}

function parsePolicy(spec: VerbSpec, rest: string[]): Parsed {
  const sub = rest[0]?.toLowerCase();
  const subs = spec.subs ?? [];
  if (sub === undefined) {
    return {
      ok: false,
      error: '`policy` needs `list` or `explain <command…>`.',
      hint: usageOf(spec),
    };
  }
  if (!subs.includes(sub as 'list')) {
    const guess = closest(sub, subs);
    return {
      ok: false,
      error: `\`policy\` has no ${shown(sub)}.${guess ? ` Did you mean \`policy ${guess}\`?` : ''}`,
      hint: usageOf(spec),
    };
  }
  if (sub === 'list') {
    if (rest.length > 1) {
      return {
        ok: false,
        error: `Unexpected ${shown(rest[1] as string)} after \`policy list\`.`,
        hint: usageOf(spec),
      };
    }
    return { ok: true, verb: 'policy', args: { sub: 'list' } };
  }
  const explained = rest.slice(1);
  if (explained.length === 0) {
    return {
      ok: false,
      error: '`policy explain` needs a command, like `policy explain failover prod-web`.',
      hint: usageOf(spec),
    };
  }
  // The explained command must itself be well formed, so the explanation is about something real.
  const inner = parse(explained.join(' '));
  if (!inner.ok) return inner;
  if (inner.verb === 'policy' || inner.verb === 'help') {
    return {
      ok: false,
      error: `\`policy explain\` explains action commands, not \`${inner.verb}\`.`,
      hint: usageOf(spec),
    };
  }
  return inner.app === undefined
    ? { ok: true, verb: 'policy', args: { sub: 'explain', words: explained } }
    : { ok: true, verb: 'policy', app: inner.app, args: { sub: 'explain', words: explained } };
}

/** `help`, or `help <verb>`: lines from the grammar table. */
export function helpLines(verb?: string): string[] {
  if (verb !== undefined) {
    const spec = specOf.get(verb as Verb);
    if (spec) {
      const lines = [spec.usage, `  ${spec.summary}`];
      for (const f of spec.flags ?? []) {
        const flag = FLAGS[f];
        lines.push(`  ${f}${flag.value ? ` ${flag.value}` : ''}  ${flag.help}`);
      }
      return lines;
    }
  }
  const width = Math.max(...GRAMMAR.map((s) => s.usage.length));
  return GRAMMAR.map((s) => `${s.usage.padEnd(width)}  ${s.summary}`);
}
