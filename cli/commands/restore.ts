import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { DrError } from '../../core/errors.js';
import { checkName } from '../../core/names.js';
import { formatBytes } from '../../core/units.js';
import { trustedPoint } from '../../replicator/recovery/point-check.js';
import { restoreVolume } from '../../replicator/recovery/restore-volume.js';
import { gatewayClient, loadKek } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { forKnownApp } from '../unknown-app.js';
import { pointArg, resolvePoint } from './point-arg.js';

export function registerRestore(program: Command, exit: ExitState): void {
  program
    .command('restore')
    .description('write a byte-exact image of one volume at a recovery point')
    .argument('<app>', 'the app')
    .requiredOption(
      '--point <id>',
      'point id from `dr points`, or latest (the latest consistent point unless --allow-fuzzy)',
    )
    .option('--allow-fuzzy', 'let latest be a fuzzy point (taken without a freeze)')
    .requiredOption('--volume <name>', 'the volume to restore')
    .requiredOption('--to <file>', 'image file to write (sparse where blocks are zero)')
    .option('--force', 'replace --to if it exists')
    .option('--json', 'print the result as JSON')
    .action(
      async (
        app: string,
        opts: {
          point: string;
          volume: string;
          to: string;
          force?: boolean;
          allowFuzzy?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) =>
        runAction(exit, opts.json, async () => {
          checkName('app', app, 'APP');
          checkName('volume', opts.volume, '--volume');
          const ctx = contextOf(cmd);
          const to = resolve(opts.to);
          await requireDirectory(dirname(to), opts.to);
          const config = await ctx.config();
          const client = gatewayClient(config);
          // SIGINT or SIGTERM stops the restore; the partial image (plaintext) is removed
          // before the command ends.
          const interrupted = new AbortController();
          const stop = (sig: NodeJS.Signals) => {
            interrupted.abort(
              new DrError(`restore interrupted by ${sig}; the partial image was removed`, {
                code: 'operation_cancelled',
                subject: opts.to,
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
            const result = await restoreVolume({
              client,
              kek,
              app,
              point,
              volume: opts.volume,
              to,
              force: opts.force === true,
              signal: interrupted.signal,
            });
            if (opts.json) printJson(result);
            else
              ctx.out(
                `restored ${app}/${opts.volume} at point ${result.point} (${point.time}, ${point.label}) to ${result.to}: ${formatBytes(result.size)}, ${formatBytes(result.bytesWritten)} of data`,
              );
            return 0;
          } catch (err) {
            throw interrupted.signal.aborted ? interrupted.signal.reason : err;
          } finally {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            client.close();
          }
        }),
    );
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
