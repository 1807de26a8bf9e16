import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMap, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { errorMessage } from '../core/errors.js';
import { VERBS, type Verb } from './contract.js';
import { evaluatePolicies, type Facts } from './evaluate-policies.js';
import { FACTS } from './fact-catalog.js';
import type { PolicySet } from './policy-set.js';

/** One case's result: what it expected and what the policies decided. */
export interface PolicyTestResult {
  file: string;
  line: number;
  name: string;
  passed: boolean;
  /** Why it failed (or was not runnable). */
  message?: string;
  got?: { outcome: string; policy?: string; approvals?: number };
}

const OUTCOMES = ['allow', 'deny', 'approval'];
/** Facts a case does not state: a known person of no group, at a fixed instant, nothing special. */
const DEFAULTS = {
  actor: 'console:test',
  person: 'test',
  known: true,
  groups: [],
  owners: [],
  isOwner: false,
  surface: 'console',
  emergency: false,
  dryRun: false,
  operationsInProgress: 0,
};

/**
 * Runs the cases of every `*.test.yaml` in `dir` against `set`: facts in, decision out.
 *
 * ```yaml
 * cases:
 *   - name: prod failover needs two SREs
 *     at: 2026-11-25T10:00:00Z        # optional: the instant (time facts follow from it)
 *     facts: { verb: failover, tier: prod, groups: [sre-oncall] }
 *     expect: approval                # allow | deny | approval (deny includes "no policy allows")
 *     policy: prod-failover-two-approvals   # optional: the policy that decides
 *     approvals: 2                    # optional: the count required
 *     warns: [some-warn-policy]       # optional: the warn-mode policies that match
 * ```
 */
export async function runPolicyTests(dir: string, set: PolicySet): Promise<PolicyTestResult[]> {
  const names = (await readdir(dir)).filter((n) => /\.test\.ya?ml$/.test(n)).sort();
  const results: PolicyTestResult[] = [];
  for (const name of names) {
    const file = join(dir, name);
    results.push(...(await runFile(file, await readFile(file, 'utf8'), set)));
  }
  return results;
}

async function runFile(file: string, text: string, set: PolicySet): Promise<PolicyTestResult[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const lineOf = (n: unknown) => {
    const r = (n as { range?: [number, number, number] } | null)?.range;
    return r ? lines.linePos(r[0]).line : 1;
  };
  const broken = (n: unknown, message: string): PolicyTestResult => ({
    file,
    line: lineOf(n),
    name: '(file)',
    passed: false,
    message,
  });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    return [
      {
        file,
        line: e ? (e.linePos?.[0].line ?? lines.linePos(e.pos[0]).line) : 1,
        name: '(file)',
        passed: false,
        message: `not valid YAML: ${e?.message.split('\n')[0] ?? ''}`,
      },
    ];
  }
  const root = doc.contents;
  const cases = isMap(root) ? root.get('cases', true) : undefined;
  if (!isSeq(cases)) return [broken(root, 'expected `cases:` with a list of test cases')];
  const out: PolicyTestResult[] = [];
  for (const node of cases.items as Node[]) {
    const c = node.toJSON() as Record<string, unknown> | null;
    const line = lineOf(node);
    const name = typeof c?.name === 'string' ? c.name : `case at line ${line}`;
    const fail = (message: string, got?: PolicyTestResult['got']): PolicyTestResult => ({
      file,
      line,
      name,
      passed: false,
      message,
      ...(got ? { got } : {}),
    });
    if (!c || typeof c !== 'object' || Array.isArray(c)) {
      out.push(fail('a case is a map with name, facts and expect'));
      continue;
    }
    const facts = c.facts as Record<string, unknown> | undefined;
    if (!facts || typeof facts !== 'object' || Array.isArray(facts)) {
      out.push(fail('facts: expected a map of fact: value'));
      continue;
    }
    const unknown = Object.keys(facts).filter((k) => !FACTS[k]);
    if (unknown.length > 0) {
      out.push(fail(`facts: unknown fact(s) ${unknown.join(', ')}`));
      continue;
    }
    if (!(VERBS as readonly string[]).includes(String(facts.verb))) {
      out.push(fail(`facts.verb: expected one of ${VERBS.join(', ')}`));
      continue;
    }
    if (!OUTCOMES.includes(String(c.expect))) {
      out.push(fail(`expect: expected allow, deny or approval, not ${JSON.stringify(c.expect)}`));
      continue;
    }
    const at = c.at === undefined ? Date.parse('2026-01-07T12:00:00Z') : Date.parse(String(c.at));
    if (!Number.isFinite(at)) {
      out.push(
        fail(`at: expected an ISO time like 2026-11-25T10:00:00Z, not ${JSON.stringify(c.at)}`),
      );
      continue;
    }
    try {
      const ev = await evaluatePolicies(set, {
        ...DEFAULTS,
        ...facts,
        verb: facts.verb as Verb,
        now: at,
      } as Facts);
      const outcome = ev.outcome === 'none' ? 'deny' : ev.outcome;
      const policy = ev.policy?.name ?? (ev.outcome === 'none' ? '(default deny)' : undefined);
      const got = {
        outcome,
        ...(policy ? { policy } : {}),
        ...(ev.approval ? { approvals: ev.approval.count } : {}),
      };
      const wrong: string[] = [];
      if (outcome !== c.expect) wrong.push(`expected ${String(c.expect)}, got ${outcome}`);
      if (c.policy !== undefined && c.policy !== policy)
        wrong.push(`expected policy ${String(c.policy)}, got ${policy ?? '(none)'}`);
      const warned = ev.outcomes.filter((o) => o.mode === 'warn' && o.matched).map((o) => o.policy);
      const warns =
        c.warns === undefined
          ? undefined
          : Array.isArray(c.warns)
            ? c.warns.map(String)
            : [String(c.warns)];
      if (warns && warns.join() !== warned.join())
        wrong.push(
          `expected warnings from ${warns.join(', ') || 'no policy'}, got ${warned.join(', ') || 'none'}`,
        );
      if (c.approvals !== undefined && c.approvals !== ev.approval?.count)
        wrong.push(
          `expected ${String(c.approvals)} approval(s), got ${ev.approval?.count ?? 'none'}`,
        );
      out.push(
        wrong.length ? fail(wrong.join('; '), got) : { file, line, name, passed: true, got },
      );
    } catch (err) {
      out.push(fail(`could not evaluate: ${errorMessage(err)}`));
    }
  }
  return out;
}
