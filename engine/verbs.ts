/** The one verb table: each command's words, flags (syntax and range), who may run it and its help. */
import { formatDuration, parseDuration } from '../core/units.js';

/*
 * Chat (Slack, DingTalk, console), `policy explain` and the `dr` commands of the same verbs are
 * all generated from VERB_TABLE below; adding a verb is one entry here plus its handler in
 * create-engine.ts. Flag values are read (syntax) by the same `read` everywhere, and their
 * ranges are checked only by `argsProblem`, which the engine runs on every command.
 */

/** The arguments flags set (CommandArgs in contract.ts adds the operand's id and policy's words). */
export interface FlagArgs {
  /** drill, failover: a point id; absent means the latest consistent point. */
  point?: number;
  /** drill: how long the drill server is kept, in ms. */
  keepMs?: number;
  /** failover, failback: act outside the usual rules where a policy allows it. */
  emergency?: boolean;
  /** Explain what would happen; nothing is enqueued. */
  dryRun?: boolean;
  /** reject: why; failover, failback: why it is asked for (shown on the approval card, kept in the audit log). */
  reason?: string;
}

export type FlagName = '--point' | '--keep' | '--emergency' | '--dry-run' | '--reason';

export interface FlagSpec {
  /** The field of FlagArgs the flag sets. */
  arg: 'point' | 'keepMs' | 'emergency' | 'dryRun' | 'reason';
  /** The value's name in chat usage (`P`); absent for a switch. */
  value?: string;
  /** The value's name in `dr` help (`id` for `--point <id>`). */
  cliValue?: string;
  help: string;
  /** The range the engine holds the value to, as help and docs say it. */
  range?: string;
  /** The value is every word up to the next option, not one word. */
  words?: boolean;
  /** What is said when the value is missing (default: "needs a value (help)"). */
  missing?: string;
  /** Syntax only: sets the arg from the typed text, or says what is wrong with it. */
  read(args: FlagArgs, text: string): string | undefined;
  /** The range, checked by the engine only: what is wrong with the value already in args. */
  check?(args: FlagArgs, app: string | undefined): string | undefined;
}

/** Longest reason, in characters, for `--reason` and `reject <id> <reason>`. */
export const MAX_REASON = 300;
const MAX_KEEP_MS = 7 * 86_400_000;

/** A typed value for an error message: quoted, control characters shown as ?, cut short. */
export function shown(word: string): string {
  const clean = [...word].map((c) => (/[\p{Cc}]/u.test(c) ? '?' : c)).join('');
  return JSON.stringify(clean.length > 40 ? `${clean.slice(0, 40)}…` : clean);
}

/** A reason as it is kept: one line, outer quotes and runs of spaces gone. */
export function cleanReason(text: string): string {
  return text
    .replace(/[\p{Cc}]/gu, ' ')
    .replace(/^(["'\u201c\u2018])(.*)(["'\u201d\u2019])$/su, '$2')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The reason's range, for `--reason` and for reject's words alike. */
export function reasonProblem(reason: string): string | undefined {
  if (reason.length > MAX_REASON)
    return `the reason is ${reason.length} characters long; the limit is ${MAX_REASON}`;
  return undefined;
}

export const FLAGS: Record<FlagName, FlagSpec> = {
  '--point': {
    arg: 'point',
    value: 'P',
    cliValue: 'id',
    help: 'a recovery point id (see `points <app>`) or latest',
    range: 'ids are whole numbers from 1; latest is the latest consistent point',
    read: (args, text) => {
      if (text === 'latest') return undefined;
      if (!/^\d{1,16}$/.test(text))
        return `--point takes a point id like 42 or latest, not ${shown(text)}`;
      args.point = Number(text);
      return undefined;
    },
    check: ({ point }, app) =>
      point !== undefined && (!Number.isSafeInteger(point) || point < 1)
        ? `--point ${String(point)} is out of range: point ids are whole numbers from 1 (see \`points ${app ?? '<app>'}\`)`
        : undefined,
  },
  '--keep': {
    arg: 'keepMs',
    value: 'D',
    cliValue: 'duration',
    help: 'how long the drill server is kept, like 30m or 2h',
    range: '1s to 7d',
    read: (args, text) => {
      const ms = /^\d/.test(text) ? parseDuration(text) : undefined;
      if (ms === undefined) return `--keep takes a duration like 30m or 2h, not ${shown(text)}`;
      args.keepMs = ms;
      return undefined;
    },
    check: ({ keepMs }) =>
      keepMs !== undefined && (!Number.isFinite(keepMs) || keepMs < 1000 || keepMs > MAX_KEEP_MS)
        ? `--keep ${Number.isFinite(keepMs) && keepMs >= 0 ? formatDuration(keepMs) : String(keepMs)} is out of range: it takes 1s to 7d`
        : undefined,
  },
  '--emergency': {
    arg: 'emergency',
    help: 'act outside the usual rules where a policy allows it',
    read: (args) => {
      args.emergency = true;
      return undefined;
    },
  },
  '--dry-run': {
    arg: 'dryRun',
    help: 'say what would happen; nothing starts',
    read: (args) => {
      args.dryRun = true;
      return undefined;
    },
  },
  '--reason': {
    arg: 'reason',
    value: 'WHY',
    cliValue: 'why',
    help: 'why you ask, in words (up to the next option); shown on the approval card',
    range: `1 to ${MAX_REASON} characters`,
    words: true,
    missing: 'needs words saying why',
    read: (args, text) => {
      const reason = cleanReason(text);
      if (reason === '') return '--reason is empty; say why in words';
      args.reason = reason;
      return undefined;
    },
    check: ({ reason }) => (reason === undefined ? undefined : reasonProblem(reason)),
  },
};

/** The first word after the verb: an app name, an id (approval, operation, alert), or nothing. */
export interface Operand {
  kind: 'app' | 'id';
  required: boolean;
  name: string;
}

/** How the `dr` command of a verb differs from its chat form; absent when `dr` has no such command. */
export interface CliSpec {
  description: string;
  /** The operand's help in `dr VERB --help`. */
  operand: string;
  /** Defaults `dr` gives a flag's value (chat leaves it to the engine). */
  defaults?: Partial<Record<FlagName, string>>;
  /** Options only the command line has: how it shows the result. */
  options?: readonly { flags: string; help: string }[];
}

export interface VerbSpec {
  verb: string;
  /** Chat usage when it is not `verb operand flags…` (help, policy). */
  usage?: string;
  summary: string;
  operand?: Operand;
  flags?: readonly FlagName[];
  /** Free words after the operand: `reject A-12 wrong window`. */
  rest?: 'reason';
  /** Sub-commands (policy list | explain). */
  subs?: readonly ('list' | 'explain')[];
  /**
   * Who may run it: `anyone` (it only reads), or `policy`: the policies judge it, with the verb as
   * the fact `verb`, and a redelivered command gets the first answer.
   */
  access: 'anyone' | 'policy';
  cli?: CliSpec;
}

const app = (required: boolean): Operand => ({ kind: 'app', required, name: 'app' });
const id = (name: string): Operand => ({ kind: 'id', required: true, name });
const JSON_OPTION = { flags: '--json', help: 'print JSON' } as const;
const WAIT_OPTION = {
  flags: '--wait',
  help: 'follow the operation until it finishes and print the result (exit 1 on failure)',
} as const;

export const VERB_TABLE = [
  {
    verb: 'help',
    usage: 'help [verb]',
    summary: 'this list, or one verb in detail',
    access: 'anyone',
  },
  {
    verb: 'status',
    summary: 'replication state and RPO now',
    operand: app(false),
    access: 'anyone',
  },
  {
    verb: 'points',
    summary: 'recovery points of an app',
    operand: app(true),
    access: 'anyone',
    cli: {
      description: "list an app's recovery points",
      operand: 'the app',
      options: [JSON_OPTION],
    },
  },
  {
    verb: 'drill',
    summary: 'recover a copy in isolation, check it, clean up',
    operand: app(true),
    flags: ['--point', '--keep', '--dry-run'],
    access: 'policy',
    cli: {
      description: 'recover an app in isolation, check it, keep it for --keep, then clean up',
      operand: 'the app',
      defaults: { '--point': 'latest', '--keep': '30m' },
      options: [WAIT_OPTION, JSON_OPTION],
    },
  },
  {
    verb: 'failover',
    summary: 'run the app from the DR site',
    operand: app(true),
    flags: ['--point', '--emergency', '--reason', '--dry-run'],
    access: 'policy',
    cli: {
      description: 'recover an app in production mode and keep it running',
      operand: 'the app',
      defaults: { '--point': 'latest' },
      options: [WAIT_OPTION, JSON_OPTION],
    },
  },
  {
    verb: 'failback',
    summary: 'move the app back to its source',
    operand: app(true),
    flags: ['--emergency', '--reason', '--dry-run'],
    access: 'policy',
    cli: {
      description:
        "copy a failed-over app's recovered volumes back to its original volumes (changed blocks only), stop the recovered server and let the agent replicate again",
      operand: 'the app',
      options: [WAIT_OPTION, JSON_OPTION],
    },
  },
  { verb: 'approve', summary: 'approve a pending request', operand: id('id'), access: 'policy' },
  {
    verb: 'reject',
    summary: 'reject a pending request',
    operand: id('id'),
    rest: 'reason',
    access: 'policy',
  },
  {
    verb: 'cancel',
    summary: 'cancel a running operation',
    operand: id('op'),
    access: 'policy',
    cli: {
      description: 'stop a queued or running operation; a running one cleans up after itself',
      operand: 'operation id, as `dr drill` or `dr failover` printed it',
      options: [JSON_OPTION],
    },
  },
  {
    verb: 'cleanup',
    summary: 'remove a drill server now',
    operand: id('op'),
    access: 'policy',
    cli: {
      description:
        "remove a finished operation's server and files now (a drill's delayed cleanup, early)",
      operand: 'operation id',
      options: [{ flags: '--wait', help: 'wait until the cleanup is done' }, JSON_OPTION],
    },
  },
  {
    verb: 'pause',
    summary: 'pause replication of an app',
    operand: app(true),
    access: 'policy',
    cli: {
      description:
        "pause an app's replication: the gateway refuses its agent's batches until resumed (the agent waits)",
      operand: 'the app',
      options: [{ flags: '--json', help: 'print the reply as JSON' }],
    },
  },
  {
    verb: 'resume',
    summary: 'resume replication of an app',
    operand: app(true),
    access: 'policy',
    cli: {
      description: "resume a paused app's replication: the agent resyncs what changed meanwhile",
      operand: 'the app',
      options: [{ flags: '--json', help: 'print the reply as JSON' }],
    },
  },
  { verb: 'history', summary: 'recent operations', operand: app(false), access: 'anyone' },
  { verb: 'ack', summary: 'acknowledge an alert', operand: id('alert'), access: 'policy' },
  {
    verb: 'policy',
    usage: 'policy list | policy explain <command…>',
    summary: 'the policies in force, or why a command would be allowed',
    subs: ['list', 'explain'],
    access: 'anyone',
  },
] as const satisfies readonly VerbSpec[];

export type Verb = (typeof VERB_TABLE)[number]['verb'];

const BY_VERB: ReadonlyMap<string, VerbSpec> = new Map(
  (VERB_TABLE as readonly VerbSpec[]).map((s) => [s.verb, s]),
);

/** The table's entry for a verb, or undefined for a word that is no verb. */
export function verbSpec(verb: string): VerbSpec | undefined {
  return BY_VERB.get(verb);
}

/** What help shows for a verb: `drill <app> [--point P] [--keep D] [--dry-run]`. */
export function usageOf(spec: VerbSpec): string {
  if (spec.usage) return spec.usage;
  const parts: string[] = [spec.verb];
  if (spec.operand)
    parts.push(spec.operand.required ? `<${spec.operand.name}>` : `[${spec.operand.name}]`);
  for (const f of spec.flags ?? []) {
    const flag = FLAGS[f];
    parts.push(`[${f}${flag.value ? ` ${flag.value}${flag.words ? '…' : ''}` : ''}]`);
  }
  if (spec.rest) parts.splice(2, 0, `[${spec.rest}]`);
  return parts.join(' ');
}

/**
 * The engine's check of a command's arguments, the only place their ranges live: a flag the verb
 * does not take, or a value out of its range, is one line naming the flag and the range.
 */
export function argsProblem(verb: string, args: FlagArgs, app?: string): string | undefined {
  const spec = verbSpec(verb);
  if (!spec) return undefined;
  for (const [name, flag] of Object.entries(FLAGS) as [FlagName, FlagSpec][]) {
    const value = args[flag.arg];
    if (value === undefined || value === false) continue;
    const takes = spec.flags?.includes(name) || (flag.arg === 'reason' && spec.rest === 'reason');
    if (!takes) return `\`${verb}\` has no option ${name}`;
    const problem = flag.check?.(args, app);
    if (problem) return problem;
  }
  return undefined;
}
