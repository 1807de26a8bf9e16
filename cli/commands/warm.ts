import type { Command } from 'commander';
import { readConfig } from '../../core/config.js';
import { DrError, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/units.js';
import { imageCacheDir } from '../../replicator/jobs/recovery-deps.js';
import { cachedPoint, warmCache } from '../../replicator/recovery/image-cache.js';
import { parallelismOf, type ReadParallelism } from '../../replicator/recovery/read-parallelism.js';
import type { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { gatewayClient, loadKek } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { stopSignal } from '../stop-signal.js';

interface Warmed {
  app: string;
  point?: number;
  volumes: Array<{ volume: string; from?: number; blocksFetched: number }>;
  /** Why an app was left alone this round. */
  skipped?: string;
  /** What went wrong (the gateway unreachable, a bad key...): the next round tries again. */
  error?: string;
  ms: number;
}

export function registerWarm(program: Command, exit: ExitState): void {
  program
    .command('warm')
    .description(
      "keep each app's image cache at its latest consistent point, so a failover fetches only the last changes (run it under nice)",
    )
    .option('--app <name>', 'only this app (every app of dr.yaml by default)')
    .option('--every <duration>', 'how often to bring the caches forward', '10s')
    .option('--once', 'one round, then exit')
    .option('--json', 'print each round as JSON')
    .action(
      async (opts: { app?: string; every: string; once?: boolean; json?: boolean }, cmd: Command) =>
        runAction(exit, opts.json, async () => {
          const ctx = contextOf(cmd);
          const everyMs = parseDuration(opts.every);
          if (everyMs === undefined || everyMs < 1000) {
            throw usageError(
              `--every ${opts.every} is not a duration of at least 1s`,
              'pass it like 10s',
            );
          }
          const stop = stopSignal({
            part: 'dr warm',
            abandons: 'the next round of dr warm brings the image cache forward from where it is',
            env: ctx.env,
          });
          try {
            for (;;) {
              const config = await readConfig(ctx.home, ctx.env);
              if (!config.recovery.imageCache) {
                throw new DrError(
                  'the image cache is off (recovery.imageCache: false in dr.yaml)',
                  {
                    code: 'config_invalid',
                    subject: 'recovery.imageCache',
                    remedy: 'set recovery.imageCache: true in dr.yaml to keep a warm standby',
                  },
                );
              }
              const apps = opts.app ? [opts.app] : Object.keys(config.apps);
              const client = gatewayClient(config);
              const kek = await loadKek(config);
              const round: Warmed[] = [];
              try {
                for (const app of apps) {
                  if (stop.signal.aborted) break;
                  round.push(
                    await warmApp(
                      client,
                      kek,
                      app,
                      imageCacheDir(config, app),
                      parallelismOf(config.recovery),
                    ).catch(
                      (err: unknown): Warmed => ({
                        app,
                        volumes: [],
                        error: errorMessage(err),
                        ms: 0,
                      }),
                    ),
                  );
                }
              } finally {
                client.close();
              }
              for (const w of round) {
                if (opts.json) printJson(w);
                else if (w.error) process.stderr.write(`dr warm: ${w.app}: ${w.error}\n`);
                else if (w.skipped) ctx.log.debug({ app: w.app, why: w.skipped }, 'not warmed');
                else if (w.volumes.some((v) => v.blocksFetched > 0))
                  ctx.log.info({ ...w }, `cache of ${w.app} at point ${w.point}`);
              }
              if (opts.once) return round.some((w) => w.error) ? 1 : 0;
              if (stop.signal.aborted) return 0;
              await new Promise<void>((resolve) => {
                const t = setTimeout(resolve, everyMs);
                stop.signal.addEventListener('abort', () => {
                  clearTimeout(t);
                  resolve();
                });
              });
              if (stop.signal.aborted) return 0;
            }
          } finally {
            stop.dispose();
          }
        }),
    );
}

/** One app: skipped while failed over or without a consistent point; else every volume forward. */
async function warmApp(
  client: GatewayClient,
  kek: Awaited<ReturnType<typeof loadKek>>,
  app: string,
  cacheDir: string,
  parallel: ReadParallelism,
): Promise<Warmed> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const protection = await client.protection(app);
  if (protection.state === 'failed-over') {
    return { app, volumes: [], skipped: `failed over by ${protection.opId ?? '?'}`, ms: ms() };
  }
  const latest = (await client.points(app)).findLast((p) => p.label !== 'fuzzy');
  if (!latest) return { app, volumes: [], skipped: 'no consistent point yet', ms: ms() };
  const volumes: Warmed['volumes'] = [];
  const point = await client.point(app, latest.id);
  for (const volume of Object.keys(point.volumes)) {
    const held = await cachedPoint(cacheDir, volume);
    if (held && held.seqTo >= point.seqTo) {
      volumes.push({ volume, blocksFetched: 0 });
      continue;
    }
    const r = await warmCache({ client, kek, app, point, volume, cacheDir, parallel });
    if (!r)
      return {
        app,
        point: point.id,
        volumes,
        skipped: 'a drill or failover holds the cache',
        ms: ms(),
      };
    volumes.push({
      volume,
      ...(r.from !== undefined ? { from: r.from } : {}),
      blocksFetched: r.blocksFetched,
    });
  }
  return { app, point: point.id, volumes, ms: ms() };
}
