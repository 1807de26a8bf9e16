import { describe, expect, it } from 'vitest';
import { evaluatePolicies } from '../../../engine/evaluate-policies.js';
import { parsePolicyFile } from '../../../engine/parse-policy-file.js';
import { formatProblem } from '../../../engine/policy.js';
import { buildPolicySet } from '../../../engine/policy-set.js';

const groups = new Set(['sre-oncall', 'devs']);
const parse = (text: string) => parsePolicyFile(text, 'p.yaml', { knownGroups: groups });
const problems = (text: string) => parse(text).problems.map(formatProblem);

describe('policy files: validation names file, line and reason', () => {
  it('accepts a valid file and compiles its conditions', () => {
    const r = parse(`policies:
  - name: oncall-may-drill
    when:
      verb: [drill, failover]
      groups: sre-oncall
      hour: { lessThan: 18 }
    allow: true
`);
    expect(r.problems).toEqual([]);
    expect(r.policies[0]?.conditions.all).toEqual([
      { fact: 'verb', operator: 'in', value: ['drill', 'failover'] },
      { fact: 'groups', operator: 'contains', value: 'sre-oncall' },
      { fact: 'hour', operator: 'lessThan', value: 18, params: { tz: 'UTC' } },
    ]);
  });

  it('malformed YAML', () => {
    expect(problems('policies:\n  - name: x\n    when: { verb: drill\n')).toEqual([
      expect.stringMatching(/^p\.yaml:\d+: not valid YAML/),
    ]);
  });

  it('unknown fact, with a suggestion', () => {
    expect(
      problems('policies:\n  - name: x\n    when:\n      tierr: prod\n    allow: true\n'),
    ).toEqual([
      expect.stringMatching(/^p\.yaml:4: when: unknown fact "tierr" \(did you mean tier\?\)/),
    ]);
  });

  it('unknown operator', () => {
    expect(
      problems('policies:\n  - name: x\n    when:\n      hour: { before: 9 }\n    allow: true\n'),
    ).toEqual([expect.stringMatching(/^p\.yaml:4: when\.hour: unknown operator "before"/)]);
  });

  it('unknown group, in a condition and in approvals.from', () => {
    const p = problems(`policies:
  - name: x
    when:
      groups: sre-oncal
    allow: true
  - name: y
    when: { verb: failover }
    approvals: { count: 2, from: [dba] }
`);
    expect(p[0]).toMatch(
      /^p\.yaml:4: when\.groups: unknown group "sre-oncal" \(did you mean sre-oncall\?\)/,
    );
    expect(p[1]).toMatch(/^p\.yaml:8: approvals\.from: unknown group "dba"/);
  });

  it('invalid cron and time zone', () => {
    const p = problems(`timezone: Mars/Olympus
policies:
  - name: weekly
    when: { tier: prod }
    schedule: { cron: "0 3 * * 9" }
`);
    expect(p[0]).toMatch(/^p\.yaml:1: unknown time zone "Mars\/Olympus"/);
    expect(p[1]).toMatch(/^p\.yaml:5: schedule\.cron: invalid cron "0 3 \* \* 9"/);
  });

  it('schedule.plans: plans of the home, each drilled as a plan; never beside a `when`', () => {
    const plans = new Set(['shop', 'billing']);
    const withPlans = (text: string) =>
      parsePolicyFile(text, 'p.yaml', { knownGroups: groups, knownPlans: plans });
    const ok = withPlans(
      'policies:\n  - name: nightly\n    schedule: { cron: "0 2 * * *", plans: [shop, billing] }\n',
    );
    expect(ok.problems).toEqual([]);
    expect(ok.policies[0]?.effect).toEqual({
      kind: 'schedule',
      cron: '0 2 * * *',
      verb: 'drill',
      plans: ['shop', 'billing'],
    });
    const p = (text: string) => withPlans(text).problems.map(formatProblem);
    expect(
      p('policies:\n  - name: n\n    schedule:\n      cron: "0 2 * * *"\n      plans: [shp]\n'),
    ).toEqual([
      'p.yaml:5: schedule.plans: no plan "shp" (did you mean shop?); plans in plans/: shop, billing',
    ]);
    expect(
      p(
        'policies:\n  - name: n\n    when: { tier: prod }\n    schedule:\n      cron: "0 2 * * *"\n      plans: shop\n',
      ),
    ).toEqual([
      expect.stringMatching(
        /^p\.yaml:6: schedule\.plans: a schedule runs the plans it names or the apps its `when` selects, not both/,
      ),
    ]);
    expect(
      p('policies:\n  - name: n\n    schedule: { cron: "0 2 * * *", plans: [Shop!] }\n'),
    ).toEqual([
      expect.stringMatching(
        /^p\.yaml:3: schedule\.plans: expected plan names like \[shop\], not "Shop!"/,
      ),
    ]);
    expect(p('policies:\n  - name: n\n    schedule: { cron: "0 2 * * *", plans: [] }\n')).toEqual([
      expect.stringMatching(/^p\.yaml:3: schedule\.plans: expected plan names like \[shop\]$/),
    ]);
    // Without the home's plans (a bare directory, plan files that do not load) names go unchecked.
    expect(
      parse('policies:\n  - name: n\n    schedule: { cron: "0 2 * * *", plans: [any] }\n').problems,
    ).toEqual([]);
  });

  it('wrong value types and enumerations', () => {
    const p = problems(`policies:
  - name: x
    when:
      weekday: funday
      hour: { lessThan: "nine" }
    deny: no
`);
    expect(p[0]).toMatch(/^p\.yaml:4: when\.weekday: "funday" is not one of sun/);
    expect(p[1]).toMatch(/^p\.yaml:5: when\.hour: expected a number/);
  });

  it('no effect, two effects, unknown key', () => {
    const p = problems(`policies:
  - name: a
    when: { verb: drill }
  - name: b
    allow: true
    deny: nope
  - name: c
    alow: true
`);
    expect(p.some((x) => /^p\.yaml:2: policy a has no effect/.test(x))).toBe(true);
    expect(p.some((x) => /^p\.yaml:4: policy b has allow and deny/.test(x))).toBe(true);
    expect(p.some((x) => /^p\.yaml:8: unknown key "alow" \(did you mean allow\?\)/.test(x))).toBe(
      true,
    );
  });

  it('two policies that contradict are refused together', () => {
    const a = parse(
      'policies:\n  - name: a\n    when: { verb: drill, tier: prod }\n    allow: true\n',
    );
    const b = parsePolicyFile(
      'policies:\n  - name: b\n    when: { tier: prod, verb: drill }\n    deny: frozen\n',
      'q.yaml',
    );
    const r = buildPolicySet([...a.policies, ...b.policies]);
    expect(r.set).toBeUndefined();
    expect(r.problems.map(formatProblem)).toEqual([
      expect.stringMatching(/^q\.yaml:2: policy b contradicts a \(p\.yaml:2\)/),
    ]);
  });

  it('deny wins, then the largest approval, then allow; warn only warns', async () => {
    const r = parse(`policies:
  - name: allow-all
    when: { verb: failover }
    allow: true
  - name: one
    when: { verb: failover, tier: prod }
    approvals: { count: 1, from: [sre-oncall] }
  - name: three
    when: { verb: failover, groups: devs }
    approvals: { count: 3, from: [sre-oncall] }
  - name: frozen
    mode: warn
    when: { verb: failover, emergency: false }
    deny: change freeze
`);
    const set = buildPolicySet(r.policies).set;
    if (!set) throw new Error('set refused');
    const now = Date.now();
    const base = { verb: 'failover' as const, now, emergency: false };
    expect((await evaluatePolicies(set, { ...base, tier: 'dev' })).outcome).toBe('allow');
    const prod = await evaluatePolicies(set, { ...base, tier: 'prod', groups: ['devs'] });
    expect(prod.outcome).toBe('approval');
    expect(prod.approval?.count).toBe(3);
    expect(prod.warnings).toEqual(['policy frozen (warn) would deny: change freeze']);
  });
});

describe('dr.yaml people, admin and owners', () => {
  it('refuses an admin or an owner who is not under people, naming the line', async () => {
    const { parseConfig } = await import('../../../core/config.js');
    expect(() =>
      parseConfig('people:\n  alice: { ids: [slack:U1] }\nadmin: bob\n', 'dr.yaml'),
    ).toThrow(/dr\.yaml:3: admin: no person named "bob" under people/);
    expect(() =>
      parseConfig(
        'people: {}\napps:\n  web:\n    owners: [carol]\n    volumes: [{ name: d, path: /x }]\n',
        'dr.yaml',
      ),
    ).toThrow(/dr\.yaml:4: apps\.web\.owners\.0: no person named "carol"/);
    expect(() => parseConfig('people:\n  alice: { ids: [U1] }\n', 'dr.yaml')).toThrow(
      /dr\.yaml:2: people\.alice\.ids\.0: expected an identity like slack:U0123/,
    );
  });
});

describe('policy explain words', () => {
  it('reads flags as the chat grammar writes them', async () => {
    const { parseWords } = await import('../../../engine/explain-command.js');
    expect(parseWords(['drill', 'web', '--point=3', '\u2014keep', '2h'])).toEqual({
      verb: 'drill',
      app: 'web',
      args: { point: 3, keepMs: 7_200_000 },
    });
    expect(parseWords(['failover', 'web', '--emergency', '--dry-run'])).toEqual({
      verb: 'failover',
      app: 'web',
      args: { emergency: true, dryRun: true },
    });
    // The one parser's words, the same as chat's (the verb table's did-you-mean included).
    expect(parseWords(['explode'])).toBe('Unknown command "explode"');
    expect(parseWords(['dril', 'web'])).toBe('Unknown command "dril". Did you mean `drill`?');
    expect(parseWords(['drill', 'web', '--fast'])).toBe('`drill` has no option "--fast"');
    // Ranges are the engine's, whoever asks: --point 0 and --keep 0s are refused here too.
    expect(parseWords(['drill', 'web', '--point', '0'])).toMatch(/^--point 0 is out of range/);
    expect(parseWords(['drill', 'web', '--keep', '0s'])).toMatch(/^--keep 0ms is out of range/);
  });
});
