import type { Command } from 'commander';
import { findApp } from '../../core/config.js';
import { isDrError } from '../../core/errors.js';
import { checkName } from '../../core/names.js';
import { trustedPoint } from '../../replicator/recovery/point-check.js';
import { parallelismOf } from '../../replicator/recovery/read-parallelism.js';
import { type VerifyReport, verifyPoint } from '../../replicator/recovery/verify-point.js';
import { gatewayClient, loadKek } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { forKnownApp } from '../unknown-app.js';
import { pointArg } from './point-arg.js';

export function registerVerify(program: Command, exit: ExitState): void {
  program
    .command('verify')
    .description('authenticate and check every block of a recovery point (exit 1 on any mismatch)')
    .argument('<app>', 'the app')
    .option('--point <id>', 'point id, or latest', 'latest')
    .option(
      '--source',
      'also compare the point with the live volumes (only MACs cross the network)',
    )
    .option('--json', 'print the report as JSON')
    .action(
      async (
        app: string,
        opts: { point: string; source?: boolean; json?: boolean },
        cmd: Command,
      ) =>
        runAction(exit, opts.json, async () => {
          checkName('app', app, 'APP');
          const ctx = contextOf(cmd);
          const config = await ctx.config();
          const source = opts.source ? findApp(config, app) : undefined;
          const client = gatewayClient(config);
          try {
            const kek = await loadKek(config);
            const ref = pointArg(opts.point);
            let report: VerifyReport;
            try {
              const point = await forKnownApp(app, Object.keys(config.apps), client, () =>
                trustedPoint(client, kek, app, ref),
              );
              report = await verifyPoint({
                client,
                kek,
                app,
                point,
                source,
                parallel: parallelismOf(config.recovery),
              });
            } catch (err) {
              if (!isDrError(err, 'point_unverified')) throw err;
              // A point whose record or chain does not verify fails verify, saying why.
              const id = Number((err.subject ?? '').split('/')[1]) || 0;
              report = {
                app,
                point: id,
                volumes: [],
                problems: [{ volume: '*', block: -1, reason: err.message }],
                ok: false,
              };
            }
            if (opts.json) printJson(report);
            else {
              for (const p of report.problems) {
                ctx.out(
                  `MISMATCH ${app}${p.volume === '*' ? '' : `/${p.volume}`}${p.block >= 0 ? ` block ${p.block}` : ''}: ${p.reason}`,
                );
              }
              for (const v of report.volumes) {
                ctx.out(
                  `${app}/${v.volume} at point ${report.point}: ${v.blocks} blocks, digest ${v.digestOk ? 'ok' : 'MISMATCH'}${v.sourceChecked ? ', compared with source' : ''}`,
                );
              }
              ctx.out(report.ok ? 'verify: ok' : `verify: ${report.problems.length} problem(s)`);
            }
            return report.ok ? 0 : 1;
          } finally {
            client.close();
          }
        }),
    );
}
