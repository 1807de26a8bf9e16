import { describe, expect, it } from 'vitest';
import { parsePlanFile } from '../../../engine/parse-plan-file.js';
import { planOutline } from '../../../engine/plan-outline.js';
import { formatProblem } from '../../../engine/policy.js';

const apps = new Set(['db', 'api', 'worker', 'web']);
const parse = (text: string, file = 'plans/shop.yaml') =>
  parsePlanFile(text, file, { knownApps: apps });
const problems = (text: string, file?: string) => parse(text, file).problems.map(formatProblem);

const SHOP = `description: the shop
points: plan-consistent
maxSkew: 30s
groups:
  - apps: [db]
    then:
      - hook: ./repoint-dns.sh
        timeout: 1m
  - apps: [api, worker]
    wait: 20s
    then:
      - manual: DNS switched — continue
  - apps: web
`;

describe('plan files', () => {
  it('reads groups in order, waits, hooks, manual steps and the point policy', () => {
    const r = parse(SHOP);
    expect(r.problems).toEqual([]);
    expect(r.plan).toMatchObject({
      name: 'shop',
      description: 'the shop',
      points: { kind: 'plan-consistent', maxSkewMs: 30_000 },
      groups: [
        {
          apps: ['db'],
          wait: { kind: 'healthy' },
          steps: [{ kind: 'hook', command: './repoint-dns.sh', timeoutMs: 60_000, line: 7 }],
          line: 5,
        },
        {
          apps: ['api', 'worker'],
          wait: { kind: 'delay', ms: 20_000 },
          steps: [{ kind: 'manual', prompt: 'DNS switched — continue', line: 12 }],
        },
        { apps: ['web'], wait: { kind: 'healthy' }, steps: [] },
      ],
    });
  });

  it('points default to latest', () => {
    expect(parse('groups:\n  - apps: [db]\n').plan?.points).toEqual({ kind: 'latest' });
  });

  it('malformed YAML', () => {
    expect(problems('groups:\n  - apps: [db\n')).toEqual([
      expect.stringMatching(/^plans\/shop\.yaml:\d+: not valid YAML/),
    ]);
  });

  it('an unknown app, with a suggestion and the apps there are', () => {
    expect(problems('groups:\n  - apps: [db]\n  - apps: [webb]\n')).toEqual([
      'plans/shop.yaml:3: apps: unknown app "webb" (did you mean web?); apps in dr.yaml: db, api, worker, web',
    ]);
  });

  it('an app twice, an empty group, an unknown key, a bad wait', () => {
    expect(
      problems(`groups:
  - apps: [db]
    wiat: healthy
  - apps: []
  - apps: [api, db]
    wait: soon
`),
    ).toEqual([
      'plans/shop.yaml:3: unknown key "wiat" (did you mean wait?); a group has apps, wait, then',
      'plans/shop.yaml:4: apps: expected the apps of this group, like [api, worker]',
      'plans/shop.yaml:5: apps: db is already in the group at line 2; an app comes up once',
      'plans/shop.yaml:6: wait: expected healthy (each app passes its check) or a delay like 30s',
    ]);
  });

  it('bad point policy, maxSkew without plan-consistent, bad steps', () => {
    expect(problems('points: newest\ngroups:\n  - apps: [db]\n')[0]).toMatch(
      /^plans\/shop\.yaml:1: points: expected latest .* not "newest"$/,
    );
    expect(problems('maxSkew: 10s\ngroups:\n  - apps: [db]\n')).toEqual([
      'plans/shop.yaml:1: maxSkew: applies only to points: plan-consistent',
    ]);
    expect(
      problems(`groups:
  - apps: [db]
    then:
      - hook: ./a.sh
        manual: press
      - manual: ""
      - hook: ./b.sh
        timeout: forever
  - apps: [web]
    then:
      - manual: too late
`),
    ).toEqual([
      'plans/shop.yaml:4: a step is either `hook: COMMAND` or `manual: TEXT`, one of them',
      'plans/shop.yaml:6: manual: expected the text of the button, like "DNS switched — continue"',
      'plans/shop.yaml:8: timeout: expected a duration like 30s or 5m',
      'plans/shop.yaml:11: then: the last group has no next group to wait for; move these steps into a group before it',
    ]);
  });

  it('no groups, not a map, a name that is not the file name or is an app', () => {
    expect(problems('points: latest\n')).toEqual([
      expect.stringMatching(/^plans\/shop\.yaml:1: groups: expected a list of groups/),
    ]);
    expect(problems('- db\n- web\n')).toEqual([
      expect.stringMatching(/^plans\/shop\.yaml:1: expected a map with `groups:`/),
    ]);
    expect(problems('name: store\ngroups:\n  - apps: [db]\n')).toEqual([
      expect.stringMatching(
        /^plans\/shop\.yaml:1: name: the plan is called "store" but its file is shop\.yaml/,
      ),
    ]);
    expect(problems('groups:\n  - apps: [api]\n', 'plans/web.yaml')).toEqual([
      expect.stringMatching(/^plans\/web\.yaml:1: the plan "web" has the name of an app/),
    ]);
    expect(problems('groups:\n  - apps: [api]\n', 'plans/Shop.yaml')[0]).toMatch(
      /name: expected lower-case letters/,
    );
  });

  it('a file with any problem yields no plan', () => {
    expect(parse('groups:\n  - apps: [db]\n  - apps: [nope]\n').plan).toBeUndefined();
  });
});

describe('planOutline', () => {
  const plan = parse(SHOP).plan;
  if (!plan) throw new Error('the shop plan must parse');
  const fences = {
    db: { fence: 'systemctl stop postgres' },
    web: { fence: 'systemctl stop nginx' },
    api: {},
    worker: {},
  };

  it('failover fences the sources last group first, then recovers in order with the steps between', () => {
    expect(planOutline(plan, 'failover', fences)).toEqual([
      "1. fence web's source (`systemctl stop nginx`)",
      "2. fence worker's source: no fence command in dr.yaml, recorded as unfenced",
      "3. fence api's source: no fence command in dr.yaml, recorded as unfenced",
      "4. fence db's source (`systemctl stop postgres`)",
      '5. fail over db (each healthy)',
      '6. run hook `./repoint-dns.sh` (up to 60s)',
      '7. fail over api, worker (then wait 20s)',
      '8. wait for a person to press "DNS switched — continue"',
      '9. fail over web (each healthy)',
    ]);
  });

  it('failback walks the groups back to front; a drill never fences', () => {
    expect(planOutline(plan, 'failback', fences)).toEqual([
      '1. fail back web (each healthy)',
      '2. wait for a person to press "DNS switched — continue"',
      '3. fail back api, worker (then wait 20s)',
      '4. run hook `./repoint-dns.sh` (up to 60s)',
      '5. fail back db (each healthy)',
    ]);
    expect(planOutline(plan, 'drill', fences).some((l) => l.includes('fence'))).toBe(false);
  });
});
