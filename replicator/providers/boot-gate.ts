/** The bootability check as a gate before a launch: warnings for the result, or a refused failover. */
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { checkBootability, describeProblem } from './check-bootability.js';
import type { LaunchRequest } from './provider.js';

export interface BootGateOptions {
  /** enforce (default): a failover with a blocking problem is refused; warn: reported only; off. */
  bootCheck?: 'enforce' | 'warn' | 'off';
  instanceType: string;
  bootMode?: string;
  debugfs?: string;
}

/**
 * Inspects the system volume before anything is made: problems become the result's warnings;
 * a failover with a blocking one stops here, saying what and how to fix it.
 */
export async function bootGate(
  req: LaunchRequest,
  o: BootGateOptions,
  log: Logger,
): Promise<string[]> {
  const mode = o.bootCheck ?? 'enforce';
  const system = req.volumes[0];
  if (mode === 'off' || !system) return [];
  req.onStep?.('bootcheck', 0);
  const report = await checkBootability(system.path, {
    instanceType: o.instanceType,
    bootMode: o.bootMode ?? 'BIOS',
    ...(o.debugfs !== undefined ? { debugfs: o.debugfs } : {}),
  });
  req.onStep?.('bootcheck', 1);
  log.info({ checked: report.checked, problems: report.problems.length }, 'bootability checked');
  const blocking = report.problems.filter((p) => p.severity === 'blocking');
  if (req.mode === 'failover' && mode === 'enforce' && blocking[0]) {
    const more =
      blocking.length > 1 ? ` (and ${blocking.length - 1} more blocking problem(s))` : '';
    throw new DrError(
      `the recovered system disk of ${req.app} would not boot on ECS: ${blocking[0].problem}${more}`,
      {
        code: 'boot_blocked',
        subject: req.app,
        remedy: `${blocking[0].remedy}; a drill lists every problem. To fail over anyway, set bootCheck: warn in the app's provider block`,
      },
    );
  }
  return report.problems.map(
    (p) => `${p.severity === 'blocking' ? 'will not boot: ' : ''}${describeProblem(p)}`,
  );
}
