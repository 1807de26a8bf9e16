/** The flags of the verb table: what each sets, how its value is read (syntax) and its range. */
import { formatDuration, parseDuration } from '../core/units.js';

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
  /** report: how many days back the report looks. */
  days?: number;
  /** reject: why; failover, failback: why it is asked for (shown on the approval card, kept in the audit log). */
  reason?: string;
}

export type FlagName = '--point' | '--keep' | '--emergency' | '--dry-run' | '--reason' | '--days';

export interface FlagSpec {
  /** The field of FlagArgs the flag sets. */
  arg: 'point' | 'keepMs' | 'emergency' | 'dryRun' | 'reason' | 'days';
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
/** Longest period `report --days` covers. */
export const MAX_REPORT_DAYS = 366;

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
    help: 'why you ask (in chat every word up to the next option; to dr, quoted); shown on the approval card and audited',
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
  '--days': {
    arg: 'days',
    value: 'N',
    cliValue: 'days',
    help: 'how many days back the report looks (default 30)',
    range: `1 to ${MAX_REPORT_DAYS}`,
    read: (args, text) => {
      if (!/^\d{1,6}$/.test(text))
        return `--days takes a whole number of days like 30, not ${shown(text)}`;
      args.days = Number(text);
      return undefined;
    },
    check: ({ days }) =>
      days !== undefined && (!Number.isSafeInteger(days) || days < 1 || days > MAX_REPORT_DAYS)
        ? `--days ${String(days)} is out of range: it takes 1 to ${MAX_REPORT_DAYS}`
        : undefined,
  },
};
