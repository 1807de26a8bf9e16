import type { Config } from '../core/config.js';
import { type AppState, commandFacts } from './command-facts.js';
import type { Command, PolicyOutcome, Verb } from './contract.js';
import { evaluatePolicies } from './evaluate-policies.js';
import type { Identity } from './identity.js';
import { parseCommandWords } from './parse-command-words.js';
import type { PolicySet } from './policy-set.js';
import { verbSpec } from './verbs.js';

export interface Explanation {
  /** What would happen: allow, deny, approval (or `read` for verbs anyone may use). */
  would: 'allow' | 'deny' | 'approval' | 'read';
  reason: string;
  policy?: string;
  command: { verb: Verb; app?: string; emergency: boolean };
  actor: string;
  person?: string;
  policies: PolicyOutcome[];
  warnings: string[];
}

/**
 * Parses the words of a command to explain, like `failover prod-web --emergency`, with the one
 * parser of the verb table (ranges included); a string says what is wrong.
 */
export function parseWords(
  words: string[],
): { verb: Verb; app?: string; args: Command['args'] } | string {
  const parsed = parseCommandWords(words.map((w) => w.replace(/^[\u2013\u2014]/, '--')));
  if (!parsed.ok) return parsed.error.replace(/\.$/, '');
  return {
    verb: parsed.verb,
    ...(parsed.app !== undefined ? { app: parsed.app } : {}),
    args: parsed.args,
  };
}

/** Each policy, each condition, passed or failed, and the decision the command would get. */
export async function explainCommand(
  set: PolicySet,
  config: Pick<Config, 'apps'>,
  parsed: { verb: Verb; app?: string; args: Command['args'] },
  who: Identity,
  state: AppState,
  now: number,
  surface: Command['surface'] = 'console',
): Promise<Explanation> {
  const base = {
    command: {
      verb: parsed.verb,
      ...(parsed.app ? { app: parsed.app } : {}),
      emergency: parsed.args.emergency === true,
    },
    actor: who.actor,
    ...(who.person ? { person: who.person } : {}),
  };
  if (verbSpec(parsed.verb)?.access === 'anyone')
    return {
      ...base,
      would: 'read',
      reason: `${parsed.verb} only reads: anyone may use it`,
      policies: [],
      warnings: [],
    };
  const facts = commandFacts(
    config,
    {
      verb: parsed.verb,
      ...(parsed.app ? { app: parsed.app } : {}),
      actor: who.actor,
      surface,
      args: parsed.args,
    },
    who,
    state,
    now,
  );
  const ev = await evaluatePolicies(set, facts);
  const common = { ...base, policies: ev.outcomes, warnings: ev.warnings };
  if (!who.known)
    return {
      ...common,
      would: 'deny',
      policy: '(identity)',
      reason: `${who.actor} is not a person in dr.yaml and may only read`,
    };
  const p = ev.policy;
  switch (ev.outcome) {
    case 'deny':
      return {
        ...common,
        would: 'deny',
        policy: p?.name ?? '',
        reason: p?.effect.kind === 'deny' ? p.effect.reason : 'denied',
      };
    case 'approval':
      return {
        ...common,
        would: 'approval',
        policy: p?.name ?? '',
        reason: `needs ${ev.approval?.count} approval(s) from ${ev.approval?.groups.join(', ')}, not the requester`,
      };
    case 'allow':
      return { ...common, would: 'allow', policy: p?.name ?? '', reason: `allowed by ${p?.name}` };
    default:
      return {
        ...common,
        would: 'deny',
        policy: '(default deny)',
        reason: 'no policy lets this through',
      };
  }
}

/** The explanation as plain lines: the decision, then each policy and its conditions. */
export function explanationLines(e: Explanation): string[] {
  const lines = [
    `${e.command.verb}${e.command.app ? ` ${e.command.app}` : ''} as ${e.person ?? e.actor}: ${e.would.toUpperCase()} — ${e.reason}${e.policy ? ` (policy ${e.policy})` : ''}`,
  ];
  for (const o of e.policies) {
    lines.push(`${o.matched ? '✓' : '✗'} ${o.policy} [${o.mode}, ${o.effect}] ${o.file}`);
    for (const c of o.conditions)
      lines.push(
        `    ${c.passed ? 'pass' : 'FAIL'}  ${c.fact} ${c.operator} ${JSON.stringify(c.value)} (is ${JSON.stringify(c.factValue ?? null)})`,
      );
  }
  for (const w of e.warnings) lines.push(`warning: ${w}`);
  return lines;
}
