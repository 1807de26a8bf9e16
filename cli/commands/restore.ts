import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { DrError } from '../../core/errors.js';
import { checkName } from '../../core/names.js';
import { formatBytes } from '../../core/units.js';
import { trustedPoint } from '../../replicator/recovery/point-check.js';
import {
  MAX_RANGES,
  MAX_WORKERS,
  parallelismOf,
  parseCount,
} from '../../replicator/recovery/read-parallelism.js';
import { restoreVolume } from '../../replicator/recovery/restore-volume.js';
import { gatewayClient, loadKek } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { forKnownApp } from '../unknown-app.js';
import { pointArg, resolvePoint } from './point-arg.js';
import { mountInstant } from './restore-instant.js';

export function registerRestore(program: Command, exit: ExitState): void {
  program
    .command('restore')
    .description(
      'write a byte-exact image of one volume at a recovery point, or mount its file system read-only straight from the vault (--instant --mount DIR)',
    )
    .argument('<app>', 'the app')
    .requiredOption(
      '--point <id>',
      'point id from `dr points`, or latest (the latest consistent point unless --allow-fuzzy)',
    )
    .option('--allow-fuzzy', 'let latest be a fuzzy point (taken without a freeze)')
    .requiredOption('--volume <name>', 'the volume to restore')
    .option('--to <file>', 'image file to write (sparse where blocks are zero)')
    .option('--force', 'replace --to if it exists')
    .option(
      '--instant',
      'with --mount: serve the volume on demand over FUSE (only what is read is fetched)',
    )
    .option(
      '--mount <dir>',
      'with --instant: mount the volume read-only at DIR until Ctrl-C (root; a loop device)',
    )
    .option(
      '--parallel <n>',
      `ranges of blocks fetched at once, 1 to ${MAX_RANGES} (default: recovery.restoreParallel, else from the core count)`,
    )
    .option(
      '--workers <n>',
      `worker threads that fetch, decrypt and write, 0 to ${MAX_WORKERS} (default: recovery.restoreWorkers, else from the core count)`,
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        app: string,
        opts: {
          point: string;
          volume: string;
          to?: string;
          instant?: boolean;
          mount?: string;
          force?: boolean;
          allowFuzzy?: boolean;
          parallel?: string;
          workers?: string;
          json?: boolean;
        },
        cmd: Command,
      ) =>
        runAction(exit, opts.json, async () => {
          checkName('app', app, 'APP');
          checkName('volume', opts.volume, '--volume');
          const ctx = contextOf(cmd);
          const instant = instantTarget(opts);
          const ranges =
            opts.parallel === undefined
              ? undefined
              : parseCount('--parallel', opts.parallel, 1, MAX_RANGES);
          const workers =
            opts.workers === undefined
              ? undefined
              : parseCount('--workers', opts.workers, 0, MAX_WORKERS);
          const to = instant ? '' : resolve(opts.to as string);
          if (!instant) await requireDirectory(dirname(to), opts.to as string);
          const config = await ctx.config();
          const client = gatewayClient(config);
          // SIGINT or SIGTERM stops the restore; the partial image (plaintext) is removed
          // before the command ends.
          const interrupted = new AbortController();
          const stop = (sig: NodeJS.Signals) => {
            if (instant) return interrupted.abort(); // the end of an instant mount: unmount
            interrupted.abort(
              new DrError(`restore interrupted by ${sig}; the partial image was removed`, {
                code: 'operation_cancelled',
                subject: to,
              }),
            );
            client.close(); // ends a transfer waiting on the network at once
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          try {
            const kek = await loadKek(config);
            const point = await forKnownApp(app, Object.keys(config.apps), client, async () =>
              trustedPoint(
                client,
                kek,
                app,
                await resolvePoint(client, app, pointArg(opts.point), opts.allowFuzzy === true),
              ),
            );
            if (instant) {
              await mountInstant({
                client,
                kek,
                app,
                point,
                volume: opts.volume,
                mount: instant,
                log: ctx.log,
                signal: interrupted.signal,
                onMounted: (dir, device) =>
                  ctx.out(
                    `mounted ${app}/${opts.volume} at point ${point.id} (${point.time}, ${point.label}) read-only at ${dir} (${device}), fetched as it is read; Ctrl-C unmounts`,
                  ),
              });
              ctx.out(`unmounted ${instant}`);
              return 0;
            }
            const result = await restoreVolume({
              client,
              kek,
              app,
              point,
              volume: opts.volume,
              to,
              force: opts.force === true,
              parallel: parallelismOf({
                restoreParallel: ranges ?? config.recovery.restoreParallel,
                restoreWorkers: workers ?? config.recovery.restoreWorkers,
              }),
              signal: interrupted.signal,
            });
            if (opts.json) printJson(result);
            else
              ctx.out(
                `restored ${app}/${opts.volume} at point ${result.point} (${point.time}, ${point.label}) to ${result.to}: ${formatBytes(result.size)}, ${formatBytes(result.bytesWritten)} of data`,
              );
            return 0;
          } catch (err) {
            throw interrupted.signal.aborted && !opts.instant ? interrupted.signal.reason : err;
          } finally {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            client.close();
          }
        }),
    );
}

/** The directory to mount at for `--instant --mount DIR`, or undefined for an image restore (--to). */
function instantTarget(opts: {
  to?: string;
  instant?: boolean;
  mount?: string;
}): string | undefined {
  if (opts.instant || opts.mount !== undefined) {
    if (!opts.instant || opts.mount === undefined || opts.to !== undefined) {
      throw new DrError('--instant and --mount DIR go together, without --to', {
        code: 'usage',
        subject: '--instant',
        remedy: 'use `--instant --mount DIR` to mount the point, or `--to FILE` to write an image',
      });
    }
    return opts.mount;
  }
  if (opts.to === undefined) {
    throw new DrError('restore needs --to FILE (or --instant --mount DIR)', {
      code: 'usage',
      subject: '--to',
      remedy: 'add --to FILE for an image, or --instant --mount DIR to mount the file system',
    });
  }
  return undefined;
}

/** The folder --to names must exist before a byte is fetched: found late, it was a stack trace. */
async function requireDirectory(dir: string, to: string): Promise<void> {
  const found = await stat(dir).catch(() => undefined);
  if (found?.isDirectory()) return;
  throw new DrError(
    `cannot write --to ${to}: ${dir} ${found ? 'is not a directory' : 'does not exist'}`,
    {
      code: 'usage',
      subject: to,
      remedy: `create it first (\`mkdir -p ${dir}\`) or give --to a file in an existing folder`,
    },
  );
}
