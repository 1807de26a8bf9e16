import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine as RulesEngine } from 'json-rules-engine';
import { errorMessage } from '../core/errors.js';
import type { Verb } from './contract.js';
import { WEEKDAYS } from './fact-catalog.js';
import { type ParseOptions, parsePolicyFile } from './parse-policy-file.js';
import type { Policy, PolicyProblem } from './policy.js';
import type { NestedCondition } from './rules-types.js';

/** A validated, compiled set of policies: what decides, schedules and alerts until the next reload. */
export interface PolicySet {
  policies: Policy[];
  /** Policies that decide (allow, deny, approvals). */
  decisive: Policy[];
  schedules: Policy[];
  alerts: Policy[];
  /**
   * One rules engine per verb, app and tier holding only the policies that can match them (a
   * policy whose top-level conditions fix the verb, app or tier is left out of the others).
   */
  engineFor: (verb: Verb, app?: string, tier?: string) => RulesEngine;
  files: string[];
}

/** A policy file: `*.yaml` or `*.yml`, but not a test case file (`*.test.yaml`). */
export const isPolicyFile = (name: string) => /\.ya?ml$/.test(name) && !/\.test\.ya?ml$/.test(name);

/** Reads every policy file of `dir`; the set, or every problem found (file:line: reason). */
export async function loadPolicyDir(
  dir: string,
  options: ParseOptions = {},
): Promise<{ set?: PolicySet; problems: PolicyProblem[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isPolicyFile).sort();
  } catch (err) {
    return {
      problems: [
        {
          file: dir,
          line: 0,
          reason: `cannot read the policy directory: ${errorMessage(err)}; create it, or copy the shipped policies/ of the Lifeboat package there (a home made by an older dr init has none)`,
        },
      ],
    };
  }
  const policies: Policy[] = [];
  const problems: PolicyProblem[] = [];
  for (const name of names) {
    const file = join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      problems.push({ file, line: 0, reason: `cannot read: ${errorMessage(err)}` });
      continue;
    }
    const r = parsePolicyFile(text, file, options);
    policies.push(...r.policies);
    problems.push(...r.problems);
  }
  if (problems.length > 0) return { problems };
  return buildPolicySet(
    policies,
    names.map((n) => join(dir, n)),
  );
}

/** Checks the policies against each other (names, contradictions) and compiles them. */
export function buildPolicySet(
  policies: Policy[],
  files: string[] = [],
): { set?: PolicySet; problems: PolicyProblem[] } {
  const problems: PolicyProblem[] = [];
  const byName = new Map<string, Policy>();
  for (const p of policies) {
    const other = byName.get(p.name);
    if (other)
      problems.push({
        file: p.file,
        line: p.line,
        reason: `policy name "${p.name}" is already used at ${other.file}:${other.line}`,
      });
    byName.set(p.name, p);
  }
  // Two enforced policies with the same conditions, one denying and one letting it through.
  const seen = new Map<string, Policy>();
  for (const p of policies) {
    if (p.mode !== 'enforce' || !['allow', 'deny', 'approval'].includes(p.effect.kind)) continue;
    const key = canonical(p.conditions);
    const other = seen.get(key);
    if (other && (other.effect.kind === 'deny') !== (p.effect.kind === 'deny')) {
      problems.push({
        file: p.file,
        line: p.line,
        reason: `policy ${p.name} contradicts ${other.name} (${other.file}:${other.line}): the same conditions both ${p.effect.kind === 'deny' ? 'deny' : 'let through'} and ${other.effect.kind === 'deny' ? 'deny' : 'let through'}; change the conditions of one, or remove one`,
      });
    } else if (!other) seen.set(key, p);
  }
  if (problems.length > 0) return { problems };
  const decisive = policies.filter((p) => ['allow', 'deny', 'approval'].includes(p.effect.kind));
  const engines = new Map<string, RulesEngine>();
  const named = new Set(decisive.flatMap((p) => valuesOf(p, 'app') ?? []));
  const tiers = new Set(['prod', 'staging', 'dev']);
  const engineFor = (verb: Verb, app?: string, tier?: string) => {
    // Apps no policy names share one engine, so unknown names cannot grow the cache.
    const a = app !== undefined && named.has(app) ? app : undefined;
    const t = tier !== undefined && tiers.has(tier) ? tier : undefined;
    const key = `${verb}\u0000${a ?? ''}\u0000${t ?? ''}`;
    let e = engines.get(key);
    if (!e) {
      const fits = (values: string[] | undefined, v: string | undefined) =>
        !values || (v !== undefined && values.includes(v));
      e = rulesEngine(
        decisive.filter(
          (p) =>
            fits(valuesOf(p, 'verb'), verb) &&
            fits(valuesOf(p, 'app'), a) &&
            fits(valuesOf(p, 'tier'), t),
        ),
      );
      engines.set(key, e);
    }
    return e;
  };
  return {
    set: {
      policies,
      decisive,
      schedules: policies.filter((p) => p.effect.kind === 'schedule'),
      alerts: policies.filter((p) => p.effect.kind === 'alert'),
      engineFor,
      files,
    },
    problems: [],
  };
}

/** The values a top-level `equal` or `in` condition on `fact` allows; undefined when any value may match. */
function valuesOf(p: Policy, fact: 'verb' | 'app' | 'tier'): string[] | undefined {
  for (const c of p.conditions.all) {
    if (!('fact' in c) || c.fact !== fact) continue;
    if (c.operator === 'equal') return [String(c.value)];
    if (c.operator === 'in') return (c.value as unknown[]).map(String);
  }
  return undefined;
}

/** A rules engine over `policies`; each rule is named after its policy. */
export function rulesEngine(policies: Policy[]): RulesEngine {
  const engine = new RulesEngine([], { allowUndefinedFacts: true });
  for (const p of policies) {
    engine.addRule({
      name: p.name,
      conditions: p.conditions as never,
      event: { type: p.effect.kind, params: { policy: p.name } },
    });
  }
  // Time facts in the policy's time zone, from the `now` fact (ms); tests may give them directly.
  const zoned =
    (part: 'hour' | 'minute' | 'weekday') =>
    (params: Record<string, unknown>, almanac: { factValue: (id: string) => Promise<unknown> }) =>
      almanac
        .factValue('now')
        .then((now) => zonedPart(Number(now), String(params.tz ?? 'UTC'), part));
  engine.addFact('hour', zoned('hour'));
  engine.addFact('minute', zoned('minute'));
  engine.addFact('weekday', zoned('weekday'));
  return engine;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Hour, minute or weekday (sun…sat) of `ms` in time zone `tz`. */
export function zonedPart(
  ms: number,
  tz: string,
  part: 'hour' | 'minute' | 'weekday',
): number | string {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    });
    formatters.set(tz, f);
  }
  const parts = f.formatToParts(ms);
  const get = (t: string) => parts.find((x) => x.type === t)?.value ?? '';
  if (part === 'weekday') {
    const w = get('weekday').slice(0, 3).toLowerCase();
    return WEEKDAYS.includes(w as (typeof WEEKDAYS)[number]) ? w : 'sun';
  }
  return Number(get(part));
}

function canonical(v: NestedCondition | { all: NestedCondition[] } | unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).sort().join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${k}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
