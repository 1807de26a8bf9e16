/** Fencing at failover: run the app's fence command so the source stops taking writes. */
import type { AppConfig } from '../../core/config.js';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { describeFailure, runCommand, succeeded } from '../capture/thaw-all.js';
import type { FenceOutcome } from '../jobs/recovery-contract.js';
import { volumeEnvName } from '../providers/local-provider.js';

/**
 * Runs `app.fence` with `/bin/sh -c` in its own process group, bounded by `app.fenceTimeout`, with
 * DR_APP, DR_OP_ID and DR_VOLUME_<NAME> (each original volume's path) in its environment. Never
 * throws: the source may be gone (the reason for the failover), so a failover goes on either way
 * and the outcome says whether two copies of the app may now take writes.
 */
export async function fenceSource(
  app: string,
  opId: string,
  config: Pick<AppConfig, 'fence' | 'fenceTimeout' | 'volumes'>,
  log: Logger,
): Promise<FenceOutcome> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  if (config.fence === undefined) {
    return {
      fenced: false,
      detail: `the source of ${app} was not fenced (no fence command): if it still runs, stop it and unmount its volumes now, or two copies take writes; give the app one with \`dr app add ${app} … --fence CMD\` (or fence: in dr.yaml)`,
      ms: ms(),
    };
  }
  const env = commandEnv(app, opId, config.volumes);
  const r = await runCommand('/bin/sh', ['-c', config.fence], config.fenceTimeout, env);
  if (succeeded(r)) {
    log.info({ ms: ms() }, 'source fenced');
    return {
      fenced: true,
      detail: `the source of ${app} was fenced (fence command exited 0)`,
      ms: ms(),
    };
  }
  const why = describeFailure(r, config.fenceTimeout);
  log.warn({ why }, 'the fence command failed: the source is not fenced');
  return {
    fenced: false,
    detail: `the source of ${app} was NOT fenced: the fence command ${why}; if the source still runs, stop it and unmount its volumes by hand now, or two copies take writes`,
    ms: ms(),
  };
}

/**
 * Failback's last step before replication resumes: the app's unfence command (mount, start the
 * service) once the originals hold everything. Throws `unfence_failed` when it fails, so the
 * failback starts the recovered server again and the app stays up; without one, does nothing.
 */
export async function unfenceSource(
  app: string,
  opId: string,
  config: Pick<AppConfig, 'unfence' | 'fenceTimeout' | 'volumes'>,
  log: Logger,
): Promise<{ ran: boolean; ms: number }> {
  const t0 = performance.now();
  if (config.unfence === undefined) return { ran: false, ms: 0 };
  const env = commandEnv(app, opId, config.volumes);
  const r = await runCommand('/bin/sh', ['-c', config.unfence], config.fenceTimeout, env);
  if (!succeeded(r)) {
    throw new DrError(
      `the unfence command of ${app} ${describeFailure(r, config.fenceTimeout)}: the source is not back in service`,
      {
        code: 'unfence_failed',
        subject: app,
        remedy: `fix the source (or the unfence command in dr.yaml) and run \`dr failback ${app}\` again; it sends only what changed since`,
      },
    );
  }
  const ms = Math.round(performance.now() - t0);
  log.info({ ms }, 'source back in service (unfence ran)');
  return { ran: true, ms };
}

/** The fence commands' environment: the app, the operation, each original volume's path. */
function commandEnv(app: string, opId: string, volumes: AppConfig['volumes']): NodeJS.ProcessEnv {
  // The operator's command: keep cloud credentials out of its environment.
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^ALIBABA_CLOUD_|SECRET|TOKEN/i.test(k)),
  );
  env.DR_APP = app;
  env.DR_OP_ID = opId;
  for (const v of volumes) env[volumeEnvName(v.name)] = v.path;
  return env;
}
