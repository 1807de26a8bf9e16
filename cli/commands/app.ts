// `dr app add`, `dr app list` and `dr app remove`: the apps in dr.yaml.
import type { Command } from 'commander';
import { type Document, isMap, type YAMLMap } from 'yaml';
import { type AppConfig, findApp, updateConfig } from '../../core/config.js';
import { DrError } from '../../core/errors.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { type AddOptions, KiB, MiB, validateApp } from './validate-app.js';

export function registerApp(program: Command, exit: ExitState): void {
  const app = program.command('app').description('add, list and remove the apps Lifeboat protects');

  app
    .command('add')
    .description('protect an app: name its volumes (block devices or image files)')
    .argument('<app>', 'app name: lower-case letters, digits and -')
    .option(
      '--volume <name=path>',
      'a volume to replicate, like data=/dev/vdb (repeat for more)',
      (value: string, list: string[] | undefined) => [...(list ?? []), value],
    )
    .option('--tier <tier>', 'prod, staging or dev: which policies apply', 'dev')
    .option('--block-size <size>', 'replication block size, a power of two 4KiB-4MiB', '64KiB')
    .option(
      '--fsfreeze <mountpoint>',
      'freeze this file system (fsfreeze) for each cut: crash-consistent points (repeat for more)',
      (value: string, list: string[] | undefined) => [...(list ?? []), value],
    )
    .option(
      '--quiesce-freeze <cmd>',
      "the app's own freeze hook, run before each cut: app-consistent points",
    )
    .option('--quiesce-thaw <cmd>', "the app's thaw hook, always run after the cut")
    .option(
      '--quiesce-timeout <duration>',
      'longest the app may stay frozen; the thaw runs then',
      '2s',
    )
    .option(
      '--provider <kind>',
      'how it is recovered: local (this machine); alicloud is written in dr.yaml by hand (docs/recovery.md)',
      'local',
    )
    .option(
      '--start <cmd>',
      'local provider: command that starts the recovered app (DR_VOLUME_<NAME> holds each image path)',
    )
    .option(
      '--check <cmd|url>',
      'health check of the recovered app: an http(s) URL answering 2xx, or a command exiting 0',
    )
    .option(
      '--check-timeout <duration>',
      'longest a recovered app may take to pass its check',
      '60s',
    )
    .option(
      '--fence <cmd>',
      'failover runs this first to fence the source (stop the service, unmount, power off) so two copies never take writes',
    )
    .option(
      '--unfence <cmd>',
      'failback runs this last to bring the source back (mount, start the service) before replication resumes',
    )
    .option('--fence-timeout <duration>', 'longest the fence or unfence command may run', '60s')
    .option('--force', 'replace the app if it exists')
    .option('--json', 'print the added app as JSON')
    .action(async (name: string, opts: AddOptions, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const entry = await validateApp(name, opts);
        const config = await ctx.config();
        if (config.apps[name] && !opts.force) throw appExists(name);
        await updateConfig(ctx.home, (doc) => {
          if (appsMap(doc).has(name) && !opts.force) throw appExists(name);
          appsMap(doc).set(name, doc.createNode(toYaml(entry)));
        });
        if (opts.json) {
          printJson({ app: { name, ...entry }, replaced: config.apps[name] !== undefined });
          return 0;
        }
        ctx.out(
          `${config.apps[name] ? 'Replaced' : 'Added'} app ${name} (tier ${entry.tier}, block size ${sizeText(entry.blockSize)})`,
        );
        for (const v of entry.volumes) ctx.out(`  volume ${v.name}: ${v.path}`);
        ctx.out(
          entry.fence
            ? `  fence: ${entry.fence} (failover runs it before the recovered server starts)`
            : '  fence: none; a failover will say the source was not fenced (add one with --fence CMD)',
        );
        ctx.out(`Next: \`dr up\`, or run \`dr gateway\` and \`dr agent --app ${name}\``);
        return 0;
      }),
    );

  app
    .command('list')
    .description('show the protected apps')
    .option('--json', 'print the apps as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const apps = Object.entries((await ctx.config()).apps).map(([name, a]) => ({
          name,
          ...a,
        }));
        if (opts.json) {
          printJson({ apps });
          return 0;
        }
        if (apps.length === 0) {
          ctx.out('No apps yet. Add one with `dr app add APP --volume NAME=PATH`.');
          return 0;
        }
        const rows = [
          ['APP', 'TIER', 'BLOCK SIZE', 'VOLUMES'],
          ...apps.map((a) => [
            a.name,
            a.tier,
            sizeText(a.blockSize),
            a.volumes.map((v) => `${v.name}=${v.path}`).join(', '),
          ]),
        ];
        for (const line of table(rows)) ctx.out(line);
        return 0;
      }),
    );

  app
    .command('remove')
    .description('stop protecting an app (its replicas in the gateway store are kept)')
    .argument('<app>', 'app name')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        findApp(await ctx.config(), name);
        await updateConfig(ctx.home, (doc) => {
          const apps = appsMap(doc);
          apps.delete(name);
          // an empty block map would print as a lone `{}` on its own line
          if (apps.items.length === 0) apps.flow = true;
        });
        if (opts.json) {
          printJson({ removed: name });
          return 0;
        }
        ctx.out(`Removed app ${name} from dr.yaml. Its replicas in the gateway store are kept.`);
        return 0;
      }),
    );
}

/** The `apps` map of dr.yaml, created (in block style) when absent or empty. */
function appsMap(doc: Document): YAMLMap {
  let apps = doc.get('apps', true);
  if (!isMap(apps)) {
    apps = doc.createNode({});
    doc.set('apps', apps);
  }
  const map = apps as YAMLMap;
  map.flow = false;
  return map;
}

function toYaml(app: AppConfig): Record<string, unknown> {
  const q = app.quiesce;
  const p = app.provider;
  return {
    tier: app.tier,
    blockSize: sizeText(app.blockSize),
    volumes: app.volumes.map((v) => ({ name: v.name, path: v.path })),
    ...(app.owners.length ? { owners: app.owners } : {}),
    ...(app.rpoObjective !== 60_000 ? { rpoObjective: `${app.rpoObjective / 1000}s` } : {}),
    ...(app.fence !== undefined ? { fence: app.fence } : {}),
    ...(app.unfence !== undefined ? { unfence: app.unfence } : {}),
    ...(app.fenceTimeout !== 60_000 ? { fenceTimeout: `${app.fenceTimeout}ms` } : {}),
    ...(q
      ? {
          quiesce: {
            ...(q.fsfreeze.length ? { fsfreeze: q.fsfreeze } : {}),
            ...(q.freeze ? { freeze: q.freeze, thaw: q.thaw } : {}),
            timeout: `${q.timeout}ms`,
          },
        }
      : {}),
    ...(p ? { provider: { ...p, checkTimeout: `${p.checkTimeout}ms` } } : {}),
  };
}

/** 65536 → 64KiB, 1048576 → 1MiB (block sizes are powers of two, at least 4KiB). */
function sizeText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB}MiB` : `${bytes / KiB}KiB`;
}

function appExists(name: string): DrError {
  return new DrError(`app ${name} already exists in dr.yaml`, {
    code: 'app_exists',
    subject: name,
    remedy: `run \`dr app remove ${name}\` first, or pass --force to replace it`,
  });
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '),
  );
}
