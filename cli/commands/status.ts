import type { Command } from 'commander';
import { formatBytes } from '../../core/units.js';
import { gatewayClient } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';

export function registerStatus(program: Command, exit: ExitState): void {
  program
    .command('status')
    .description('replication state: phase, last point, lag, bytes shipped, throughput')
    .argument('[app]', 'only this app')
    .option('--json', 'print JSON')
    .action(async (app: string | undefined, opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const client = gatewayClient(config, 10_000);
        try {
          const names = app ? [app] : Object.keys(config.apps);
          const reported = await client.status(app);
          const byName = new Map(reported.map((s) => [s.app, s]));
          const rows = [...new Set([...names, ...byName.keys()])].sort().map(
            (name) =>
              byName.get(name) ?? {
                app: name,
                phase: 'unprotected' as const,
                agent: null,
                lastPoint: null,
                lagSeconds: null,
                points: 0,
                bytesShipped: 0,
                throughputBytesPerSec: 0,
                storedBytes: 0,
                backlogBytes: 0,
              },
          );
          if (opts.json) {
            printJson(app ? rows[0] : rows);
            return 0;
          }
          ctx.out(['APP', 'PHASE', 'LAST POINT', 'LAG', 'SHIPPED', 'THROUGHPUT'].join('\t'));
          for (const s of rows) {
            ctx.out(
              [
                s.app,
                s.phase + (s.reason ? ` (${s.reason})` : ''),
                s.lastPoint ? `#${s.lastPoint.id} ${s.lastPoint.time} ${s.lastPoint.label}` : '-',
                s.lagSeconds === null ? '-' : `${s.lagSeconds.toFixed(1)}s`,
                formatBytes(s.bytesShipped),
                `${formatBytes(s.throughputBytesPerSec)}/s`,
              ].join('\t'),
            );
          }
          return 0;
        } finally {
          client.close();
        }
      }),
    );
}
