import { CronExpressionParser } from 'cron-parser';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import { parseDuration } from '../core/units.js';
import { closest, FACTS, OPERATORS } from './fact-catalog.js';
import type { Policy, PolicyEffect, PolicyMode, PolicyProblem } from './policy.js';
import type { LeafCondition, NestedCondition } from './rules-types.js';
import { schedulePlans } from './schedule-plans.js';

const EFFECT_KEYS = ['allow', 'deny', 'approvals', 'schedule', 'alert'] as const;
const POLICY_KEYS = ['name', 'description', 'mode', 'timezone', 'when', ...EFFECT_KEYS];
const NAME = /^[a-z0-9][a-z0-9-]{0,79}$/;
const MODES: PolicyMode[] = ['enforce', 'warn', 'dryrun'];
const OPERATION_VERBS = ['drill', 'failover', 'failback'] as const;

export interface ParseOptions {
  /** Groups people belong to in dr.yaml; when given, a condition naming another group is refused. */
  knownGroups?: ReadonlySet<string>;
  /** Plans of the home's plans/; when given, a schedule naming another plan is refused. */
  knownPlans?: ReadonlySet<string>;
}

/** True when `tz` is an IANA time zone this runtime knows. */
export function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false; // RangeError: not a time zone
  }
}

/**
 * Parses and validates one policy file. Every problem is reported with its line; a file with any
 * problem yields no policies, so a half-valid file never half-applies.
 */
export function parsePolicyFile(
  text: string,
  file: string,
  options: ParseOptions = {},
): { policies: Policy[]; problems: PolicyProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems: PolicyProblem[] = [];
  const lineOf = (node: unknown): number => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? lines.linePos(range[0]).line : 1;
  };
  const fail = (node: unknown, reason: string) => {
    problems.push({ file, line: lineOf(node), reason });
  };
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const at = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      problems.push({
        file,
        line: at.line,
        reason: `not valid YAML: ${e.message.split('\n')[0] ?? ''}`,
      });
    }
    return { policies: [], problems };
  }
  const root = doc.contents;
  if (!isMap(root)) {
    fail(root, 'expected a map with a `policies:` list');
    return { policies: [], problems };
  }
  for (const pair of root.items) {
    const k = keyOf(pair.key);
    if (k !== 'policies' && k !== 'timezone')
      fail(pair.key, `unknown key "${k}" (expected policies, timezone)`);
  }
  const fileTz = scalarString(root.get('timezone', true)) ?? 'UTC';
  if (!validTimeZone(fileTz)) fail(root.get('timezone', true), `unknown time zone "${fileTz}"`);
  const list = root.get('policies', true);
  if (!isSeq(list)) {
    fail(list ?? root, 'expected `policies:` with a list of policies');
    return { policies: [], problems };
  }

  const policies: Policy[] = [];
  for (const item of list.items) {
    const p = parsePolicy(item as Node, fileTz);
    if (p) policies.push(p);
  }
  return { policies: problems.length > 0 ? [] : policies, problems };

  function parsePolicy(node: Node, defaultTz: string): Policy | undefined {
    if (!isMap(node)) {
      fail(node, 'a policy is a map with name, when and one effect');
      return undefined;
    }
    const before = problems.length;
    for (const pair of node.items) {
      const k = keyOf(pair.key);
      if (!POLICY_KEYS.includes(k)) {
        const near = closest(k, POLICY_KEYS);
        fail(
          pair.key,
          `unknown key "${k}"${near ? ` (did you mean ${near}?)` : ''}; a policy has ${POLICY_KEYS.join(', ')}`,
        );
      }
    }
    const name = scalarString(node.get('name', true));
    if (!name || !NAME.test(name))
      fail(node.get('name', true) ?? node, 'name: expected lower-case letters, digits and -');
    const modeText = scalarString(node.get('mode', true)) ?? 'enforce';
    if (!MODES.includes(modeText as PolicyMode))
      fail(node.get('mode', true), `mode: expected enforce, warn or dryrun, not "${modeText}"`);
    const tz = scalarString(node.get('timezone', true)) ?? defaultTz;
    if (node.has('timezone') && !validTimeZone(tz))
      fail(node.get('timezone', true), `unknown time zone "${tz}"`);
    const whenNode = node.get('when', true);
    const all: NestedCondition[] =
      whenNode === undefined ? [] : parseWhen(whenNode as Node, tz, 'when');
    const present = EFFECT_KEYS.filter((k) => node.has(k));
    if (present.length !== 1) {
      fail(
        node,
        present.length === 0
          ? `policy ${name ?? ''} has no effect: give one of ${EFFECT_KEYS.join(', ')}`
          : `policy ${name ?? ''} has ${present.join(' and ')}: give exactly one effect`,
      );
    }
    const effectKey = present[0];
    const effect = effectKey ? parseEffect(effectKey, node, all) : undefined;
    if (problems.length > before || !name || !effect) return undefined;
    const description = scalarString(node.get('description', true));
    return {
      name,
      file,
      line: lineOf(node),
      ...(description ? { description } : {}),
      mode: modeText as PolicyMode,
      timezone: tz,
      conditions: { all },
      effect,
    };
  }

  function parseWhen(node: Node, tz: string, where: string): NestedCondition[] {
    if (!isMap(node)) {
      fail(node, `${where}: expected a map of fact: value`);
      return [];
    }
    const out: NestedCondition[] = [];
    for (const pair of node.items) {
      const fact = keyOf(pair.key);
      const value = pair.value as Node | null;
      if (fact === 'any') {
        if (!isSeq(value) || value.items.length === 0) {
          fail(pair.key, `${where}.any: expected a list of condition maps`);
          continue;
        }
        out.push({
          any: value.items.map((v) => ({ all: parseWhen(v as Node, tz, `${where}.any`) })),
        });
        continue;
      }
      if (fact === 'not') {
        out.push({ not: { all: parseWhen(value as Node, tz, `${where}.not`) } });
        continue;
      }
      const leaf = parseLeaf(fact, pair.key as Node, value, tz, where);
      if (leaf) out.push(leaf);
    }
    return out;
  }

  function parseLeaf(
    fact: string,
    keyNode: Node,
    value: Node | null,
    tz: string,
    where: string,
  ): LeafCondition | undefined {
    const spec = FACTS[fact];
    if (!spec) {
      const near = closest(fact, Object.keys(FACTS));
      fail(
        keyNode,
        `${where}: unknown fact "${fact}"${near ? ` (did you mean ${near}?)` : ''}; facts: ${Object.keys(FACTS).join(', ')}`,
      );
      return undefined;
    }
    let operator: string;
    let raw: unknown;
    if (isMap(value)) {
      const m = value as YAMLMap;
      if (m.items.length !== 1) {
        fail(value, `${where}.${fact}: expected one operator, like { lessThan: 9 }`);
        return undefined;
      }
      operator = keyOf(m.items[0]?.key);
      raw = (m.items[0]?.value as Node | null)?.toJSON();
      if (!OPERATORS[operator]) {
        const near = closest(operator, Object.keys(OPERATORS));
        fail(
          m.items[0]?.key,
          `${where}.${fact}: unknown operator "${operator}"${near ? ` (did you mean ${near}?)` : ''}; operators: ${Object.keys(OPERATORS).join(', ')}`,
        );
        return undefined;
      }
    } else {
      raw = value?.toJSON() ?? null;
      operator = spec.type === 'list' ? 'contains' : Array.isArray(raw) ? 'in' : 'equal';
    }
    const op = OPERATORS[operator];
    if (!op) return undefined;
    const at = isMap(value) ? value : (value ?? keyNode);
    if (!op.types.includes(spec.type)) {
      fail(at, `${where}.${fact}: operator ${operator} does not apply to a ${spec.type} fact`);
      return undefined;
    }
    const values = op.valueList ? raw : [raw];
    if (!Array.isArray(values) || values.length === 0) {
      fail(at, `${where}.${fact}: ${operator} expects a non-empty list`);
      return undefined;
    }
    const element: 'string' | 'number' | 'boolean' = spec.type === 'list' ? 'string' : spec.type;
    for (const v of values) {
      if (typeof v !== element) {
        fail(at, `${where}.${fact}: expected a ${element}, not ${JSON.stringify(v)}`);
        return undefined;
      }
      if (spec.values && !spec.values.includes(v as string)) {
        fail(at, `${where}.${fact}: "${String(v)}" is not one of ${spec.values.join(', ')}`);
        return undefined;
      }
      if (fact === 'groups' && options.knownGroups && !options.knownGroups.has(v as string)) {
        const near = closest(v as string, options.knownGroups);
        fail(
          at,
          `${where}.groups: unknown group "${String(v)}"${near ? ` (did you mean ${near}?)` : ''}; groups in dr.yaml: ${[...options.knownGroups].join(', ') || '(none)'}`,
        );
        return undefined;
      }
    }
    return { fact, operator, value: raw, ...(spec.zoned ? { params: { tz } } : {}) };
  }

  function parseEffect(
    key: (typeof EFFECT_KEYS)[number],
    node: YAMLMap,
    all: NestedCondition[],
  ): PolicyEffect | undefined {
    const v = node.get(key, true) as Node | undefined;
    const js = v?.toJSON() as unknown;
    const obj = (js !== null && typeof js === 'object' && !Array.isArray(js) ? js : {}) as Record<
      string,
      unknown
    >;
    const unknownKeys = (allowed: string[]) => {
      for (const k of Object.keys(obj))
        if (!allowed.includes(k))
          fail(v, `${key}: unknown key "${k}" (expected ${allowed.join(', ')})`);
    };
    const dur = (field: string, fallback?: number): number | undefined => {
      const raw = obj[field];
      if (raw === undefined) return fallback;
      const ms =
        typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
      if (ms === undefined || ms <= 0) {
        fail(v, `${key}.${field}: expected a duration like 30s, 30m or 1h`);
        return undefined;
      }
      return ms;
    };
    switch (key) {
      case 'allow':
        if (js !== true) fail(v, 'allow: expected true');
        return { kind: 'allow' };
      case 'deny':
        if (typeof js !== 'string' || js.trim() === '') {
          fail(
            v,
            'deny: expected the reason people will read, like "failback only in the change window"',
          );
          return undefined;
        }
        return { kind: 'deny', reason: js };
      case 'approvals': {
        unknownKeys(['count', 'from', 'expires']);
        const count = obj.count;
        if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 20)
          fail(v, 'approvals.count: expected a whole number from 1 to 20');
        const from = obj.from;
        const groups = Array.isArray(from) ? from : typeof from === 'string' ? [from] : [];
        if (groups.length === 0 || groups.some((g) => typeof g !== 'string'))
          fail(
            v,
            'approvals.from: expected the groups whose members may approve, like [sre-oncall]',
          );
        for (const g of groups)
          if (options.knownGroups && typeof g === 'string' && !options.knownGroups.has(g))
            fail(
              v,
              `approvals.from: unknown group "${g}"; groups in dr.yaml: ${[...options.knownGroups].join(', ') || '(none)'}`,
            );
        const expiresMs = dur('expires', 30 * 60_000);
        if (typeof count !== 'number' || expiresMs === undefined) return undefined;
        return { kind: 'approval', count, groups: groups as string[], expiresMs };
      }
      case 'schedule': {
        unknownKeys(['cron', 'command', 'plans']);
        const cron = obj.cron;
        const verb = obj.command ?? 'drill';
        if (!OPERATION_VERBS.includes(verb as 'drill')) {
          fail(
            v,
            `schedule.command: expected drill, failover or failback, not ${JSON.stringify(verb)}`,
          );
          return undefined;
        }
        if (typeof cron !== 'string') {
          fail(v, 'schedule.cron: expected a cron pattern like "0 3 * * 0" (Sunday 03:00)');
          return undefined;
        }
        try {
          CronExpressionParser.parse(cron);
        } catch (err) {
          fail(v, `schedule.cron: invalid cron "${cron}": ${(err as Error).message}`);
          return undefined;
        }
        const fixedVerb = all.find((c) => 'fact' in c && c.fact === 'verb');
        if (fixedVerb)
          fail(v, 'schedule: select apps with app, tier or owners; the verb is schedule.command');
        const plans = schedulePlans(obj.plans, all.length > 0, options.knownPlans);
        if (plans.problem) {
          fail(
            (isMap(v) ? (v.get('plans', true) as Node | undefined) : undefined) ?? v,
            plans.problem,
          );
          return undefined;
        }
        return {
          kind: 'schedule',
          cron,
          verb: verb as 'drill',
          ...(plans.names ? { plans: plans.names } : {}),
        };
      }
      case 'alert': {
        unknownKeys(['on', 'over', 'for', 'escalateAfter', 'to']);
        const to = obj.to;
        const channels = to === undefined ? [] : Array.isArray(to) ? to : [to];
        for (const c of channels)
          if (typeof c !== 'string' || !/^((slack|dingtalk):\S+|console(:\S+)?)$/.test(c))
            fail(
              v,
              `alert.to: ${JSON.stringify(c)} is not a channel like slack:C0123, dingtalk:cid… or console`,
            );
        const on = obj.on ?? 'rpo';
        if (on !== 'rpo' && on !== 'agent-silent') {
          fail(v, `alert.on: expected rpo or agent-silent, not ${JSON.stringify(on)}`);
          return undefined;
        }
        const overMs = dur('over');
        const forMs = dur('for', on === 'rpo' ? 60_000 : 120_000);
        const escalateAfterMs = dur('escalateAfter');
        if (forMs === undefined) return undefined;
        return {
          kind: 'alert',
          on,
          forMs,
          ...(overMs !== undefined ? { overMs } : {}),
          ...(escalateAfterMs !== undefined ? { escalateAfterMs } : {}),
          ...(channels.length ? { to: channels as string[] } : {}),
        };
      }
    }
  }
}

function keyOf(node: unknown): string {
  return isScalar(node) ? String(node.value) : String(node);
}

function scalarString(node: unknown): string | undefined {
  return isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
}
