/** The one verb table: each command's words, flags (syntax and range), who may run it and its help. */
import { FLAGS, type FlagArgs, type FlagName, type FlagSpec, shown } from './verb-flags.js';

/*
 * Chat (Slack, DingTalk, console), `policy explain` and the `dr` commands of the same verbs are
 * all generated from VERB_TABLE below; adding a verb is one entry here plus its handler in
 * create-engine.ts. Flag values are read (syntax) by the same `read` everywhere, and their
 * ranges are checked only by `argsProblem`, which the engine runs on every command.
 */

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
  /** docs/chat.md's longer words, where the one-line summary leaves something out. */
  doc?: string;
  operand?: Operand;
  flags?: readonly FlagName[];
  /**
   * Free words after the operand: `reject A-12 wrong window` (reason); `throttle web 10MiB/s
   * mon-fri 08:00-18:00, 50MiB/s` (rate: required, read by the engine's submitThrottle).
   */
  rest?: 'reason' | 'rate';
  /** Sub-commands (policy list | explain). */
  subs?: readonly ('list' | 'explain')[];
  /**
   * Who may run it: `anyone` (it only reads), or `policy`: the policies judge it, with the verb as
   * the fact `verb`, and a redelivered command gets the first answer.
   */
  access: 'anyone' | 'policy';
  cli?: CliSpec;
  /** A `dr` command that answers the same question its own way, not generated (policy). */
  cliOwn?: string;
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
    usage: 'status [app|plan]',
    summary: 'replication state and RPO now',
    doc: "replication state and RPO now, with the agent's own last point beside the gateway's (a warning when the gateway's latest is older: it lost, rolled back or withholds points); `status APP` adds a line per volume with its block size's write amplification, and advice when it is high (docs/replication.md, Choosing a block size); a plan's name gives its apps group by group, each as `status APP` shows it, and the plan's last run (`last run: Drill of plan shop (op-…): done in 41 s`)",
    operand: app(false),
    access: 'anyone',
    cli: {
      description:
        "replication state: phase, tracker, last point, lag (RPO now), backlog, throughput, freeze time; a plan's name gives its apps group by group and its last run, as chat's `status PLAN`",
      operand: 'only this app, or a plan of plans/',
      options: [JSON_OPTION],
    },
  },
  {
    verb: 'points',
    summary: 'recovery points of an app',
    doc: "recovery points of an app, each `verified`, `UNSIGNED` or `REFUSED` (with the reason) where the engine's home holds the key encryption key, `unchecked` where it does not",
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
  {
    verb: 'approve',
    summary: 'approve a pending request',
    doc: 'approve a pending request (`approve A-12`)',
    operand: id('id'),
    access: 'policy',
  },
  {
    verb: 'reject',
    summary: 'reject a pending request',
    doc: 'reject a pending request, saying why',
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
  {
    verb: 'throttle',
    usage: 'throttle <app> <rate> | default',
    summary: "cap an app's replication bandwidth",
    doc: "cap the app's replication bandwidth (`20MiB/s`, `100Mbit/s`, or by time of day in the app's `timeZone`: `10MiB/s mon-fri 08:00-18:00, 50MiB/s`); the agent applies it at its next heartbeat, over its own `agent.maxRate`; `throttle <app> default` gives that back. Checked before the policies (`throttle web fast: fast is not a rate`), audited, told to the app's channels; `status` says when the cap holds the RPO back",
    operand: app(true),
    rest: 'rate',
    access: 'policy',
  },
  {
    verb: 'history',
    summary: 'recent operations',
    doc: 'recent decisions, approvals and operations from the audit log, one line each (`2026-12-07 01:02:03  drill web op-…: queued  by console:alice`)',
    operand: app(false),
    access: 'anyone',
  },
  {
    verb: 'report',
    usage: 'report <app|plan> [--days N]',
    summary: 'drill report as a picture',
    doc: "a picture of the app's (or a plan's) last days (default 30): RPO with the objective line and breaches shaded, each drill's RTO split by step with its verdict and data-loss window (a plan: each app's RPO, and each plan drill split by group and the steps between, else its apps' drills), and a one-line summary; Slack and DingTalk get the PNG, the console and a surface that cannot upload the summary line",
    operand: app(true),
    flags: ['--days'],
    access: 'anyone',
    cli: {
      description:
        "drill report of an app or a plan: RPO with objective and breaches, drills' RTO by step (a plan's: by group), verdict and data-loss window",
      operand: 'the app, or a plan of plans/',
      options: [
        {
          flags: '--out <file>',
          help: 'write the PNG (or .svg) there; without it, print the summary',
        },
        JSON_OPTION,
      ],
    },
  },
  { verb: 'ack', summary: 'acknowledge an alert', operand: id('alert'), access: 'policy' },
  {
    verb: 'continue',
    summary: "go on after a plan's manual step",
    doc: 'go on after the manual step a plan run waits at (`continue op-…`, the Continue button); pressed once: a second press says who continued it',
    operand: id('op'),
    access: 'policy',
  },
  {
    verb: 'retry',
    summary: 'retry what failed in a plan run',
    doc: 'a plan run stopped by a failure runs the failed app (a new operation) or hook again; later groups still wait',
    operand: id('op'),
    access: 'policy',
  },
  {
    verb: 'skip',
    summary: 'go on without what failed in a plan run',
    doc: 'a plan run stopped by a failure goes on without the failed app or hook (the record says who skipped it)',
    operand: id('op'),
    access: 'policy',
  },
  {
    verb: 'rollback',
    summary: 'roll a plan run back',
    doc: "stop a plan run and remove everything it started, last group first: drills' servers, failovers' servers with their sources unfenced and replication resumed (apps already failed back stay home)",
    operand: id('op'),
    access: 'policy',
  },
  {
    verb: 'policy',
    usage: 'policy list | policy explain <command…>',
    summary: 'the policies in force, or why a command would be allowed',
    subs: ['list', 'explain'],
    access: 'anyone',
    cliOwn:
      '`dr policy list|explain` (explain reads the words with this table), with `lint` and `test`',
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
    if (!takes) return `\`${verb}\` has no option ${shown(name)}`;
    const problem = flag.check?.(args, app);
    if (problem) return problem;
  }
  return undefined;
}
