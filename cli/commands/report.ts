import { extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError } from '../../core/errors.js';
import { checkName } from '../../core/names.js';
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { submitAsAdmin } from '../submit-as-admin.js';
import { verbArgs, verbCommand } from '../verb-command.js';

/**
 * `dr report APP|PLAN [--days N] [--out FILE]`: the drill report, asked of the engine like `report`
 * in chat (a read: anyone may), printed as its summary line and, with --out, drawn into a PNG or SVG.
 */
export function registerReport(program: Command, exit: ExitState): void {
  verbCommand(program, 'report').action(
    async (app: string, opts: { days?: string; out?: string; json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('app', app, 'APP or PLAN');
        const args = verbArgs('report', opts, app);
        const out = opts.out === undefined ? undefined : resolve(opts.out);
        if (out && !['.png', '.svg'].includes(extname(out).toLowerCase()))
          throw usageError(
            `--out ${opts.out} is neither a .png nor a .svg file`,
            'name the file report.png or report.svg',
          );
        const ctx = contextOf(c);
        const config = await ctx.config();
        const reply = await submitAsAdmin(
          ctx,
          config,
          { verb: 'report', app, args },
          { anyone: true },
        );
        if (!reply.ok || !reply.report)
          throw new DrError(reply.summary, {
            code: 'app_unknown',
            subject: app,
            remedy:
              'name an app of dr.yaml or a plan of plans/ (`dr status` and `dr plan lint` list them)',
          });
        if (out) {
          const { renderDrillReport } = await import('../../engine/render-drill-report.js');
          const pic = await renderDrillReport(reply.report);
          await writeFileAtomic(out, extname(out).toLowerCase() === '.svg' ? pic.svg : pic.png);
        }
        if (opts.json)
          printJson({ ok: true, app, ...(out ? { file: out } : {}), report: reply.report });
        else ctx.out(out ? `${reply.summary}\nwrote ${out}` : reply.summary);
        return 0;
      }),
  );
}
