import type { Command } from 'commander';
import { errorMessage } from '../../core/errors.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { checkFuse } from '../doctor/check-fuse.js';
import {
  checkCertificates,
  checkGateway,
  checkKek,
  checkPolicies,
  checkRedis,
  checkTrace,
  type Finding,
} from '../doctor/doctor-checks.js';

export function registerDoctor(program: Command, exit: ExitState): void {
  program
    .command('doctor')
    .description(
      'check this machine and home: Redis, block tracing, FUSE for instant recovery, certificates, gateway and its clock, policies (exit 1 on a failure)',
    )
    .option('--json', 'print the findings as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(cmd);
        const findings: Finding[] = [];
        let config: Awaited<ReturnType<typeof ctx.config>> | undefined;
        try {
          config = await ctx.config();
          findings.push({ check: 'home', status: 'ok', detail: `${config.home}/dr.yaml is valid` });
        } catch (err) {
          findings.push({
            check: 'home',
            status: 'fail',
            detail: errorMessage(err).replace(/\. To resolve, .*$/, ''),
            remedy: 'run `dr init`, or fix dr.yaml as the message says (the other checks need it)',
          });
        }
        findings.push(await checkRedis(ctx.env));
        findings.push(...(await checkTrace(ctx.env, ctx.home)));
        findings.push(await checkFuse());
        if (config) {
          findings.push(await checkKek(config));
          findings.push(...(await checkCertificates(config)));
          findings.push(...(await checkGateway(config)));
          findings.push(await checkPolicies(config));
        }
        const failures = findings.filter((f) => f.status === 'fail').length;
        const warnings = findings.filter((f) => f.status === 'warn').length;
        if (opts.json) {
          printJson({ home: ctx.home, ok: failures === 0, failures, warnings, findings });
        } else {
          ctx.out(`dr doctor: ${ctx.home}`);
          for (const f of findings) {
            const mark = f.status === 'ok' ? 'ok  ' : f.status === 'warn' ? 'warn' : 'FAIL';
            ctx.out(`  ${mark}  ${f.check.padEnd(13)} ${f.detail}`);
            if (f.remedy) ctx.out(`        ${''.padEnd(13)} remedy: ${f.remedy}`);
          }
          ctx.out(
            failures + warnings === 0
              ? 'no problems found'
              : `${failures} failure(s), ${warnings} warning(s)${failures ? '' : ' (warnings do not fail the check)'}`,
          );
        }
        return failures > 0 ? 1 : 0;
      }),
    );
}
