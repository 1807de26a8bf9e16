import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import type { LoadedConfig } from '../../core/config.js';
import { DrError, isDrError } from '../../core/errors.js';
import { redisUrlFrom } from '../../core/redis.js';
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { redisPrefix } from '../recovery-connect.js';

/** The policy directory: DIR when given, else the one dr.yaml names (relative to the home). */
function policyDir(dir: string | undefined, config: LoadedConfig | undefined): string {
  if (dir) return resolve(dir);
  if (!config)
    throw usageError(
      'no policy directory given and no Lifeboat home found',
      'pass DIR, or run it with --home',
    );
  return isAbsolute(config.policies) ? config.policies : resolve(config.home, config.policies);
}

/** The home's config when there is one; lint and test of a bare DIR work without it. */
async function maybeConfig(read: () => Promise<LoadedConfig>): Promise<LoadedConfig | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isDrError(err, 'home_missing')) return undefined;
    throw err;
  }
}

/** The policies of TARGET, group and plan names checked against the home when there is one. */
async function loadPolicies(target: string, config: LoadedConfig | undefined) {
  const { loadPolicyDir } = await import('../../engine/policy-set.js');
  const { policyParseOptions } = await import('../../engine/policy-parse-options.js');
  return loadPolicyDir(target, config ? await policyParseOptions(config, config.home) : {});
}

/** Every problem of a policy directory on stderr, as file:line: reason. */
function printProblems(problems: { file: string; line: number; reason: string }[]): void {
  for (const p of problems) process.stderr.write(`${p.file}:${p.line}: ${p.reason}\n`);
}

export function registerPolicy(program: Command, exit: ExitState): void {
  const policy = program
    .command('policy')
    .description('check, test and explain the policy files (see docs/policies.md)');

  policy
    .command('list')
    .description('the policies in the directory dr.yaml names: name, mode, effect, file:line')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const config = await ctx.config();
        const r = await loadPolicies(policyDir(undefined, config), config);
        if (!r.set) {
          if (opts.json) printJson({ ok: false, problems: r.problems });
          printProblems(r.problems);
          return 1;
        }
        const rows = r.set.policies.map(({ conditions: _c, ...p }) => p);
        if (opts.json) printJson(rows);
        else
          for (const p of rows)
            ctx.out(
              `${p.name}  [${p.mode}, ${p.effect.kind}]  ${p.file}:${p.line}${p.description ? `  ${p.description}` : ''}`,
            );
        return 0;
      }),
    );

  policy
    .command('lint')
    .description(
      'validate the policy files: every problem with file, line and reason (exit 1 on any)',
    )
    .argument('[dir]', 'policy directory (default: the one dr.yaml names)')
    .option('--json', 'print JSON')
    .action(async (dir: string | undefined, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const config = await maybeConfig(ctx.config);
        const target = policyDir(dir, config);
        const r = await loadPolicies(target, config);
        if (opts.json) {
          printJson({
            dir: target,
            ok: r.problems.length === 0,
            policies: r.set?.policies.length ?? 0,
            groupsChecked: config !== undefined,
            problems: r.problems,
          });
        } else if (r.problems.length) {
          printProblems(r.problems);
        } else {
          ctx.out(
            `ok: ${r.set?.policies.length ?? 0} policies in ${r.set?.files.length ?? 0} file(s) in ${target}`,
          );
          if (!config) ctx.out('  (no home found: group names were not checked against dr.yaml)');
        }
        return r.problems.length ? 1 : 0;
      }),
    );

  policy
    .command('test')
    .description(
      'run the *.test.yaml cases beside the policies: facts in, decision out (exit 1 on any failure)',
    )
    .argument('[dir]', 'policy directory (default: the one dr.yaml names)')
    .option('--json', 'print JSON')
    .action(async (dir: string | undefined, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const config = await maybeConfig(ctx.config);
        const target = policyDir(dir, config);
        const { runPolicyTests } = await import('../../engine/run-policy-tests.js');
        const loaded = await loadPolicies(target, config);
        if (!loaded.set) {
          if (opts.json)
            printJson({ dir: target, ok: false, problems: loaded.problems, results: [] });
          printProblems(loaded.problems);
          return 1;
        }
        const results = await runPolicyTests(target, loaded.set);
        const failed = results.filter((r) => !r.passed);
        if (opts.json)
          printJson({ dir: target, ok: failed.length === 0 && results.length > 0, results });
        else {
          for (const r of results)
            ctx.out(
              `${r.passed ? 'pass' : 'FAIL'}  ${r.name}${r.passed ? '' : `  (${r.file}:${r.line}: ${r.message})`}`,
            );
          ctx.out(`${results.length - failed.length} passed, ${failed.length} failed`);
        }
        if (results.length === 0) {
          process.stderr.write(`dr: no test cases (*.test.yaml) in ${target}\n`);
          return 1;
        }
        return failed.length ? 1 : 0;
      }),
    );

  policy
    .command('explain')
    .description(
      'each policy, each condition, passed or failed, and the decision a command would get',
    )
    .argument('<command...>', 'the command, like: failover prod-web --emergency')
    // The explained command's own flags (--emergency, --point 3) are words of the command.
    .allowUnknownOption(true)
    .option('--as <person>', 'judge it as this person under people: (default: the admin)')
    .option('--json', 'print JSON')
    .action(async (words: string[], opts: { as?: string; json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const config = await ctx.config();
        const name = opts.as ?? config.admin;
        const person = name ? config.people[name] : undefined;
        if (!name || !person) {
          throw new DrError(
            name
              ? `no person named ${JSON.stringify(name)} under people: in dr.yaml`
              : 'no --as and no admin in dr.yaml',
            {
              code: 'usage',
              subject: '--as',
              remedy: `pass --as with one of: ${Object.keys(config.people).join(', ') || '(nobody yet; add people: to dr.yaml)'}`,
            },
          );
        }
        const { explainCommand, explanationLines, parseWords } = await import(
          '../../engine/explain-command.js'
        );
        const parsed = parseWords(words);
        if (typeof parsed === 'string')
          throw usageError(parsed, 'give the command as people type it, like `failover web`');
        if (parsed.app !== undefined && !config.apps[parsed.app]) {
          const { findApp } = await import('../../core/config.js');
          findApp(config, parsed.app);
        }
        const target = policyDir(undefined, config);
        const loaded = await loadPolicies(target, config);
        if (!loaded.set) {
          printProblems(loaded.problems);
          return 1;
        }
        const state = await readState(ctx.env, parsed.app);
        const e = await explainCommand(
          loaded.set,
          config,
          parsed,
          { actor: `cli:${name}`, person: name, groups: person.groups, known: true },
          state,
          Date.now(),
          'cli',
        );
        if (opts.json) printJson(e);
        else for (const line of explanationLines(e)) ctx.out(line);
        return 0;
      }),
    );
}

/** The app's state from Redis when REDIS_URL is set; without it, RPO and drill age are unknown. */
async function readState(env: NodeJS.ProcessEnv, app: string | undefined) {
  const url = redisUrlFrom(env);
  if (!url || !app) return { operationsInProgress: 0 };
  const { openRedis } = await import('../recovery-connect.js');
  const { appState } = await import('../../engine/decide.js');
  const redis = await openRedis(env, 'lifeboat-dr-policy', 3000);
  try {
    return await appState({ redis, prefix: redisPrefix(env), now: Date.now }, app);
  } finally {
    redis.disconnect();
  }
}
