import type { JobName } from '../replicator/jobs/index.js';
import type { DrillReport } from './drill-report.js';
import type { FlagArgs } from './verb-flags.js';
import { VERB_TABLE, type Verb } from './verbs.js';

/**
 * The control plane's contract with the chat surfaces: a `Command` goes in, a `Reply` comes back
 * at once, and `Notice`s follow on a Redis stream as things move. Surfaces (bot/) render these and
 * nothing else; the engine never speaks Block Kit or DingTalk cards.
 */

/** Where a command came from. `cli` is `dr drill|failover|failback` as the local administrator. */
export type Surface = 'slack' | 'dingtalk' | 'console' | 'cli' | 'scheduler';

/** The verbs, identical on every surface, in help order: from the one verb table (verbs.ts). */
export const VERBS: readonly Verb[] = VERB_TABLE.map((s) => s.verb);
export type { Verb };

/** Verbs that change something, judged by the policies; every other verb only reads. */
export const ACTION_VERBS: readonly Verb[] = VERB_TABLE.filter((s) => s.access === 'policy').map(
  (s) => s.verb,
);

/** How many days back `report` looks when no --days is given. */
export const DEFAULT_REPORT_DAYS = 30;

/** The parsed words of a command; which fields a verb uses is fixed by the verb table. */
export interface CommandArgs extends FlagArgs {
  /** approve, reject: the approval id; cancel, cleanup, continue, retry, skip, rollback: the operation id; ack: the alert id. */
  id?: string;
  /** throttle: the bandwidth cap as written (`20MiB/s`, a schedule by time of day, `unlimited`), or `default`. */
  rate?: string;
  /** policy: which sub-command. */
  sub?: 'list' | 'explain';
  /** policy explain: the words of the command to explain, e.g. ['failover', 'prod-web']. */
  words?: string[];
}

export interface Command {
  /** Unique per request: the surface's delivery id when it has one, so a redelivery is recognised. */
  id: string;
  /** Surface-qualified identity: `slack:U123`, `dingtalk:<staffId>`, `console:<name>`, `cli:<name>`, `scheduler`. */
  actor: string;
  surface: Surface;
  /** Surface-qualified conversation the command came from, e.g. `slack:C123`; replies and notices go there. */
  channel?: string;
  verb: Verb;
  app?: string;
  args: CommandArgs;
  /** ISO time the surface received it. */
  at: string;
}

/** One policy's part in a decision, for `policy explain` and the audit log. */
export interface PolicyOutcome {
  policy: string;
  file: string;
  mode: 'enforce' | 'warn' | 'dryrun';
  matched: boolean;
  effect: 'allow' | 'deny' | 'approval' | 'schedule' | 'alert';
  /** Each condition with the fact's value and whether it held. */
  conditions: {
    fact: string;
    operator: string;
    value: unknown;
    factValue: unknown;
    passed: boolean;
  }[];
}

/** What an approval needs and has, as cards and `history` show it. */
export interface ApprovalState {
  /** Short id people type: `approve A-12`. */
  id: string;
  /** The operation the approval will start; notices of both share the key `op:<opId>`. */
  opId: string;
  verb: 'drill' | 'failover' | 'failback';
  app: string;
  requestedBy: string;
  required: number;
  /** Groups whose members may approve. */
  groups: string[];
  approvals: { actor: string; person: string; at: string }[];
  status: 'pending' | 'granted' | 'rejected' | 'expired' | 'cancelled';
  rejectedBy?: { actor: string; person: string; at: string; reason?: string };
  /** ISO time. */
  expiresAt: string;
}

export type Decision =
  | { outcome: 'allow'; opId: string; job: JobName; policies: PolicyOutcome[] }
  | { outcome: 'deny'; reason: string; policy: string; policies: PolicyOutcome[] }
  | { outcome: 'approval'; approval: ApprovalState; policies: PolicyOutcome[] }
  | {
      outcome: 'dryrun';
      /** What would have happened without --dry-run. */
      would: 'allow' | 'deny' | 'approval';
      reason: string;
      policies: PolicyOutcome[];
    };

/** A button: surfaces show it as a button, the console as the words to type. */
export interface Action {
  kind:
    | 'approve'
    | 'reject'
    | 'cleanup'
    | 'ack'
    | 'cancel'
    | 'continue'
    | 'retry'
    | 'skip'
    | 'rollback';
  label: string;
  /** The command the press stands for, in the grammar: `approve A-12`, `cleanup op-3f2a`, `ack AL-4`. */
  words: string;
  style?: 'primary' | 'danger';
  /**
   * Asked before a destructive press is sent (Slack's confirm dialog, the card's confirmation): what
   * the press will do. The console shows no dialog: typing the words is the confirmation.
   */
  confirm?: { title: string; text: string; yes: string };
}

/** The engine's immediate answer to a command. */
export interface Reply {
  ok: boolean;
  /** One line: `Drill of prod-web queued as op-3f2a`, `Denied: …`, `Unknown app "x". Did you mean prod-web?`. */
  summary: string;
  /** More plain lines (tables are pre-formatted; surfaces show them in monospace). */
  details?: string[];
  /** The machine form (status, points, history, the decision), for `--json` and richer rendering. */
  data?: unknown;
  decision?: Decision;
  actions?: Action[];
  /** When notices will follow about this (an operation or an approval): their key, e.g. `op:op-3f2a`. */
  thread?: string;
  /** Only the person who asked should see it (a refused button press): Slack ephemeral, DingTalk private. */
  private?: boolean;
  /**
   * A drill report to show as a picture: a surface that can upload images draws it
   * (render-drill-report.ts) and attaches the PNG; one that cannot shows `summary` and says so.
   */
  report?: DrillReport;
}

export type NoticeKind =
  | 'operation.started'
  | 'operation.step'
  | 'operation.finished'
  | 'operation.failed'
  | 'approval.requested'
  | 'approval.updated'
  | 'approval.granted'
  | 'approval.rejected'
  | 'approval.expired'
  /** A drill report (picture) after a scheduled drill of an app or a plan: `report` carries it. */
  | 'report.ready'
  | 'rpo.breach'
  | 'rpo.recovered'
  | 'agent.silent'
  | 'alert.acknowledged'
  | 'alert.escalated'
  | 'policy.invalid'
  | 'surface.down'
  | 'replication.paused'
  | 'replication.resumed'
  | 'replication.throttled';

/** Something the chat layer should tell people. Notices sharing a `key` update one message. */
export interface Notice {
  /** Unique (the stream entry id once written). */
  id: string;
  kind: NoticeKind;
  /** `op:<opId>` for an operation and its approval, `alert:<alertId>`, `policy`, `surface:<name>`,
   * `pause:<app>:<since>` for a pause and its resume. */
  key: string;
  app?: string;
  /** Surface-qualified channels, e.g. `slack:C123`, `dingtalk:cid…`, `console`; chosen from dr.yaml and policies. */
  targets: string[];
  severity: 'info' | 'warning' | 'critical';
  summary: string;
  details?: string[];
  actions?: Action[];
  data?: unknown;
  /** A drill report to show as a picture (as on Reply). */
  report?: DrillReport;
  /**
   * The details are the message's body (a plan run's groups and apps): shown in the message and
   * updated with it, not posted to its thread on each change.
   */
  detailsInMessage?: boolean;
  /** ms since epoch. */
  time: number;
}

/** Redis keys the engine and the surfaces share, under the Lifeboat prefix (`lifeboat:`). */
export function controlKeys(prefix = 'lifeboat:') {
  return {
    /** Stream of JSON `Notice`s (field `notice`); each surface reads it with its own consumer group. */
    notices: `${prefix}notices`,
    /** Hash-chained audit stream. */
    audit: `${prefix}audit`,
  };
}

/** What a surface needs from the control plane. */
export interface ControlPlane {
  /** Decide and, where allowed, act. Never throws for bad input: the reply says what was wrong. */
  submit(command: Command): Promise<Reply>;
}
