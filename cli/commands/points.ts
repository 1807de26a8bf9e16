import type { Command } from 'commander';
import { checkName } from '../../core/names.js';
import { formatBytes } from '../../core/units.js';
import { checkPoints } from '../../replicator/recovery/point-check.js';
import { gatewayClient, loadKek } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { forKnownApp } from '../unknown-app.js';
import { verbCommand } from '../verb-command.js';

export function registerPoints(program: Command, exit: ExitState): void {
  verbCommand(program, 'points').action(
    async (app: string, opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('app', app, 'APP');
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const client = gatewayClient(config);
        try {
          const points = await forKnownApp(app, Object.keys(config.apps), client, () =>
            client.points(app),
          );
          // Where this home holds the key encryption key, each point's record and the chain are
          // checked; the gateway's host (no key) can only list them.
          const kek = await loadKek(config).catch(() => undefined); // no key here: shown as unchecked
          const trust = kek ? checkPoints(kek, app, points) : undefined;
          const bad = trust?.filter((t) => t.status === 'bad') ?? [];
          const code = bad.length > 0 ? 1 : 0;
          if (opts.json) {
            printJson(
              points.map((p, i) => {
                const t = trust?.[i];
                return {
                  ...p,
                  check: t ? t.status : 'unchecked',
                  ...(t?.reason ? { checkReason: t.reason } : {}),
                };
              }),
            );
            return code;
          }
          if (points.length === 0) {
            ctx.out(`no recovery points for ${app} yet; run \`dr agent --app ${app}\``);
            return 0;
          }
          ctx.out(['ID', 'TIME', 'LABEL', 'CHANGED', 'RECORD'].join('\t'));
          points.forEach((p, i) => {
            const changed = Object.entries(p.volumes)
              .map(([name, v]) => `${name}=${formatBytes(v.bytesChanged)}`)
              .join(' ');
            const t = trust?.[i];
            const check = !t
              ? 'unchecked (no key here)'
              : t.status === 'signed'
                ? 'verified'
                : t.status === 'unsigned'
                  ? 'UNSIGNED'
                  : 'REFUSED';
            ctx.out([p.id, p.time, p.label, changed, check].join('\t'));
          });
          for (const t of bad) ctx.out(`point ${t.id} is refused: ${t.reason}`);
          if (trust?.some((t) => t.status === 'unsigned'))
            ctx.out(
              'UNSIGNED points were made before points were signed: restore, verify, drills and failover refuse them',
            );
          return code;
        } finally {
          client.close();
        }
      }),
  );
}
