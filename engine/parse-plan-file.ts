/** Parses and validates one plan file (plans/NAME.yaml), every problem with its file and line. */
import { basename } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { parseDuration } from '../core/units.js';
import { closest } from './fact-catalog.js';
import type { Plan, PlanGroup, PlanStep, PlanWait, PointPolicy } from './plan.js';
import type { PolicyProblem } from './policy.js';

const PLAN_KEYS = ['name', 'description', 'points', 'maxSkew', 'groups'];
const GROUP_KEYS = ['apps', 'wait', 'then'];
const STEP_KEYS = ['hook', 'timeout', 'manual'];
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const DEFAULT_HOOK_TIMEOUT_MS = 5 * 60_000;

export interface PlanParseOptions {
  /** The apps of dr.yaml; when given, a plan naming another app (or named like an app) is refused. */
  knownApps?: ReadonlySet<string>;
}

/** The plan a file's name promises: `plans/shop.yaml` is the plan `shop`. */
export function planNameOf(file: string): string {
  return basename(file).replace(/\.ya?ml$/, '');
}

/**
 * Parses one plan file. A file with any problem yields no plan, so a half-valid plan never runs.
 */
export function parsePlanFile(
  text: string,
  file: string,
  options: PlanParseOptions = {},
): { plan?: Plan; problems: PolicyProblem[] } {
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
    return { problems };
  }
  const root = doc.contents;
  if (!isMap(root)) {
    fail(root, 'expected a map with `groups:`, a list of groups of apps');
    return { problems };
  }
  for (const pair of root.items) {
    const k = keyOf(pair.key);
    if (!PLAN_KEYS.includes(k)) fail(pair.key, unknownKey(k, PLAN_KEYS, 'a plan'));
  }

  const fromFile = planNameOf(file);
  const nameNode = root.get('name', true);
  const name = nameNode === undefined ? fromFile : scalarString(nameNode);
  if (name === undefined || !NAME.test(name))
    fail(
      nameNode ?? root,
      `name: expected lower-case letters, digits and - (up to 63), not ${JSON.stringify(name ?? nameNode?.toString())}; rename the file or the plan`,
    );
  else if (name !== fromFile)
    fail(
      nameNode,
      `name: the plan is called "${name}" but its file is ${basename(file)}; name the file ${name}.yaml or drop name:`,
    );
  else if (options.knownApps?.has(name))
    fail(
      nameNode ?? root,
      `the plan "${name}" has the name of an app; a plan's name goes where an app's name goes, so rename the plan`,
    );

  const descNode = root.get('description', true);
  const description = descNode === undefined ? undefined : scalarString(descNode);
  if (descNode !== undefined && description === undefined)
    fail(descNode, 'description: expected a line of text');

  const points = parsePoints(root.get('points', true), root.get('maxSkew', true));

  const groupsNode = root.get('groups', true);
  const groups: PlanGroup[] = [];
  if (!isSeq(groupsNode) || groupsNode.items.length === 0) {
    fail(
      groupsNode ?? root,
      'groups: expected a list of groups, like `- apps: [db]` then `- apps: [api, worker]`',
    );
  } else {
    const seen = new Map<string, number>();
    groupsNode.items.forEach((item, i) => {
      const g = parseGroup(item as Node, i === groupsNode.items.length - 1, seen);
      if (g) groups.push(g);
    });
  }

  if (problems.length > 0 || name === undefined || points === undefined) return { problems };
  return {
    plan: {
      name,
      file,
      line: lineOf(root),
      ...(description !== undefined ? { description } : {}),
      points,
      groups,
    },
    problems,
  };

  function parsePoints(node: unknown, skewNode: unknown): PointPolicy | undefined {
    const kind = node === undefined ? 'latest' : scalarString(node);
    if (kind !== 'latest' && kind !== 'plan-consistent') {
      fail(
        node,
        `points: expected latest (each app's newest point) or plan-consistent (the newest points that all precede one instant), not ${JSON.stringify(kind ?? String(node))}`,
      );
      return undefined;
    }
    if (skewNode === undefined) return { kind };
    if (kind === 'latest') {
      fail(skewNode, 'maxSkew: applies only to points: plan-consistent');
      return undefined;
    }
    const raw = isScalar(skewNode) ? skewNode.value : undefined;
    const ms = typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
    if (ms === undefined) {
      fail(skewNode, 'maxSkew: expected a duration like 30s, 5m or 1h');
      return undefined;
    }
    return { kind, maxSkewMs: ms };
  }

  function parseGroup(node: Node, last: boolean, seen: Map<string, number>): PlanGroup | undefined {
    if (!isMap(node)) {
      fail(node, 'a group is a map with apps: (and optionally wait: and then:)');
      return undefined;
    }
    const before = problems.length;
    for (const pair of node.items) {
      const k = keyOf(pair.key);
      if (!GROUP_KEYS.includes(k)) fail(pair.key, unknownKey(k, GROUP_KEYS, 'a group'));
    }
    const appsNode = node.get('apps', true);
    const appNodes = isSeq(appsNode) ? appsNode.items : appsNode === undefined ? [] : [appsNode];
    if (appNodes.length === 0)
      fail(appsNode ?? node, 'apps: expected the apps of this group, like [api, worker]');
    const apps: string[] = [];
    for (const a of appNodes) {
      const app = scalarString(a);
      if (app === undefined) {
        fail(a, `apps: expected an app name, not ${JSON.stringify(String(a))}`);
        continue;
      }
      const earlier = seen.get(app);
      if (earlier !== undefined) {
        fail(a, `apps: ${app} is already in the group at line ${earlier}; an app comes up once`);
        continue;
      }
      if (options.knownApps && !options.knownApps.has(app)) {
        const near = closest(app, options.knownApps);
        fail(
          a,
          `apps: unknown app "${app}"${near ? ` (did you mean ${near}?)` : ''}; apps in dr.yaml: ${[...options.knownApps].join(', ') || '(none; add one with dr app add)'}`,
        );
        continue;
      }
      seen.set(app, lineOf(a));
      apps.push(app);
    }
    const wait = parseWait(node.get('wait', true));
    const thenNode = node.get('then', true);
    const steps: PlanStep[] = [];
    if (thenNode !== undefined) {
      if (!isSeq(thenNode))
        fail(thenNode, 'then: expected a list of steps (- hook: CMD, - manual: TEXT)');
      else {
        if (last && thenNode.items.length > 0)
          fail(
            thenNode,
            'then: the last group has no next group to wait for; move these steps into a group before it',
          );
        for (const s of thenNode.items) {
          const step = parseStep(s as Node);
          if (step) steps.push(step);
        }
      }
    }
    if (problems.length > before || wait === undefined) return undefined;
    return { apps, wait, steps, line: lineOf(node) };
  }

  function parseWait(node: unknown): PlanWait | undefined {
    if (node === undefined) return { kind: 'healthy' };
    const raw = isScalar(node) ? node.value : undefined;
    if (raw === 'healthy') return { kind: 'healthy' };
    const ms = typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
    if (ms === undefined || ms <= 0) {
      fail(node, 'wait: expected healthy (each app passes its check) or a delay like 30s');
      return undefined;
    }
    return { kind: 'delay', ms };
  }

  function parseStep(node: Node): PlanStep | undefined {
    if (!isMap(node)) {
      fail(node, 'a step is `hook: COMMAND` (with an optional timeout:) or `manual: TEXT`');
      return undefined;
    }
    for (const pair of node.items) {
      const k = keyOf(pair.key);
      if (!STEP_KEYS.includes(k)) fail(pair.key, unknownKey(k, STEP_KEYS, 'a step'));
    }
    const hook = node.get('hook', true);
    const manual = node.get('manual', true);
    const timeout = node.get('timeout', true);
    if ((hook === undefined) === (manual === undefined)) {
      fail(node, 'a step is either `hook: COMMAND` or `manual: TEXT`, one of them');
      return undefined;
    }
    if (manual !== undefined) {
      const prompt = scalarString(manual)?.trim();
      if (timeout !== undefined)
        fail(timeout, 'timeout: applies to a hook; a manual step waits for a person');
      if (!prompt) {
        fail(manual, 'manual: expected the text of the button, like "DNS switched — continue"');
        return undefined;
      }
      return { kind: 'manual', prompt, line: lineOf(node) };
    }
    const command = scalarString(hook)?.trim();
    if (!command) {
      fail(hook, 'hook: expected a command, like ./repoint-dns.sh');
      return undefined;
    }
    let timeoutMs = DEFAULT_HOOK_TIMEOUT_MS;
    if (timeout !== undefined) {
      const raw = isScalar(timeout) ? timeout.value : undefined;
      const ms =
        typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
      if (ms === undefined || ms <= 0) {
        fail(timeout, 'timeout: expected a duration like 30s or 5m');
        return undefined;
      }
      timeoutMs = ms;
    }
    return { kind: 'hook', command, timeoutMs, line: lineOf(node) };
  }
}

function unknownKey(k: string, allowed: string[], what: string): string {
  const near = closest(k, allowed);
  return `unknown key "${k}"${near ? ` (did you mean ${near}?)` : ''}; ${what} has ${allowed.join(', ')}`;
}

function keyOf(node: unknown): string {
  return isScalar(node) ? String(node.value) : String(node);
}

function scalarString(node: unknown): string | undefined {
  return isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
}
