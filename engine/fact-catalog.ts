import { VERBS } from './contract.js';

/**
 * The facts a policy may test. Their values are computed by engine code (`commandFacts`), never
 * by policy files; a policy naming any other fact is refused on load.
 */
export type FactType = 'string' | 'number' | 'boolean' | 'list';

export interface FactSpec {
  type: FactType;
  /** When set, the only values a policy may compare this fact with. */
  values?: readonly string[];
  /** Takes the policy's time zone as a parameter. */
  zoned?: boolean;
  doc: string;
}

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export const FACTS: Record<string, FactSpec> = {
  verb: { type: 'string', values: VERBS, doc: 'the command verb: drill, failover, failback, …' },
  app: { type: 'string', doc: 'the app the command is about' },
  tier: { type: 'string', values: ['prod', 'staging', 'dev'], doc: "the app's tier in dr.yaml" },
  owners: { type: 'list', doc: "the app's owners (people) in dr.yaml" },
  isOwner: { type: 'boolean', doc: "the actor is one of the app's owners" },
  actor: { type: 'string', doc: 'surface-qualified identity: slack:U…, cli:alice, scheduler' },
  person: { type: 'string', doc: 'the person the actor is in dr.yaml (empty when unknown)' },
  known: { type: 'boolean', doc: 'the actor is a person in dr.yaml, or the scheduler' },
  groups: { type: 'list', doc: "the person's groups in dr.yaml" },
  surface: {
    type: 'string',
    values: ['slack', 'dingtalk', 'console', 'cli', 'scheduler'],
    doc: 'where the command came from',
  },
  hour: { type: 'number', zoned: true, doc: 'hour of day 0–23 in the policy time zone' },
  minute: { type: 'number', zoned: true, doc: 'minute of the hour in the policy time zone' },
  weekday: {
    type: 'string',
    values: WEEKDAYS,
    zoned: true,
    doc: 'day of the week (sun…sat) in the policy time zone',
  },
  rpoSeconds: {
    type: 'number',
    doc: 'how far the DR copy is behind now, in seconds (absent when unknown)',
  },
  rpoObjectiveSeconds: { type: 'number', doc: "the app's rpoObjective in seconds" },
  lastDrillAgeHours: {
    type: 'number',
    doc: "hours since the app's last successful drill (absent when never drilled)",
  },
  operationsInProgress: { type: 'number', doc: 'operations holding the app now (0 or 1)' },
  emergency: { type: 'boolean', doc: 'the command carries --emergency' },
  dryRun: { type: 'boolean', doc: 'the command carries --dry-run' },
};

/** json-rules-engine's built-in operators, and which fact types each applies to. */
export const OPERATORS: Record<string, { types: FactType[]; valueList?: boolean }> = {
  equal: { types: ['string', 'number', 'boolean'] },
  notEqual: { types: ['string', 'number', 'boolean'] },
  in: { types: ['string', 'number'], valueList: true },
  notIn: { types: ['string', 'number'], valueList: true },
  contains: { types: ['list'] },
  doesNotContain: { types: ['list'] },
  lessThan: { types: ['number'] },
  lessThanInclusive: { types: ['number'] },
  greaterThan: { types: ['number'] },
  greaterThanInclusive: { types: ['number'] },
};

/** Closest of `options` to `word` within a small edit distance, for "did you mean". */
export function closest(word: string, options: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      best = o;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min(
        (row[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        prev + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}
