import type { Command } from 'commander';
import { formatBytes } from '../../core/units.js';
import { gatewayClient } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { forKnownApp } from '../unknown-app.js';

export function registerPoints(program: Command, exit: ExitState): void {
  program
    .command('points')
    .description("list an app's recovery points")
    .argument('<app>', 'the app')
    .option('--json', 'print JSON')
    .action(async (app: string, opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const client = gatewayClient(config);
        try {
          const points = await forKnownApp(app, Object.keys(config.apps), client, () =>
            client.points(app),
          );
          if (opts.json) {
            printJson(points);
            return 0;
          }
          if (points.length === 0) {
            ctx.out(`no recovery points for ${app} yet; run \`dr agent --app ${app}\``);
            return 0;
          }
          ctx.out(['ID', 'TIME', 'LABEL', 'CHANGED'].join('\t'));
          for (const p of points) {
            const changed = Object.entries(p.volumes)
              .map(([name, v]) => `${name}=${formatBytes(v.bytesChanged)}`)
              .join(' ');
            ctx.out([p.id, p.time, p.label, changed].join('\t'));
          }
          return 0;
        } finally {
          client.close();
        }
      }),
    );
}
