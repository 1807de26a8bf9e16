import type { NestedCondition } from './rules-types.js';

/** How a policy acts when it matches: enforce it, only warn that it would, or only record it. */
export type PolicyMode = 'enforce' | 'warn' | 'dryrun';

export type PolicyEffect =
  | { kind: 'allow' }
  | { kind: 'deny'; reason: string }
  | {
      kind: 'approval';
      /** Distinct people needed; the requester never counts. */
      count: number;
      /** Groups whose members may approve. */
      groups: string[];
      expiresMs: number;
    }
  | {
      kind: 'schedule';
      cron: string;
      /** What the scheduler submits for each app the policy's conditions select. */
      verb: 'drill' | 'failover' | 'failback';
      /** Plans run as plans instead (one operation each); the policy then has no conditions. */
      plans?: string[];
    }
  | {
      kind: 'alert';
      on: 'rpo' | 'agent-silent';
      /** rpo: the lag that counts as a breach; absent means the app's rpoObjective. */
      overMs?: number;
      /** rpo: how long the lag must stay over before the alert; agent-silent: how long unheard. */
      forMs: number;
      /** Re-send to the escalation channels when nobody acknowledged within this time. */
      escalateAfterMs?: number;
      /** Channels told besides the app's and `channels.alerts` (surface-qualified, like slack:C0123). */
      to?: string[];
    };

/** One validated policy, as loaded from a file. */
export interface Policy {
  name: string;
  file: string;
  line: number;
  description?: string;
  mode: PolicyMode;
  timezone: string;
  /** The conditions, compiled for json-rules-engine (an `all` of the `when` map). */
  conditions: { all: NestedCondition[] };
  effect: PolicyEffect;
}

/** A refusal of a policy file: where and why. */
export interface PolicyProblem {
  file: string;
  line: number;
  reason: string;
}

export const formatProblem = (p: PolicyProblem) => `${p.file}:${p.line}: ${p.reason}`;
