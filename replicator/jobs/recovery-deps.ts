import { join } from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AppConfig, LoadedConfig } from '../../core/config.js';
import { readEnv } from '../../core/env.js';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { AlicloudOptions } from '../providers/alicloud-provider.js';
import { createLocalProvider } from '../providers/local-provider.js';
import type { LaunchRequest, Provider, WayHome } from '../providers/provider.js';
import type { HealthCheck } from '../providers/run-health-check.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { RecoveryKeys } from './recovery-contract.js';

/** What a recovery worker needs from its process; `dr worker` wires the real ones. */
export interface RecoveryDeps {
  /** Events, locks and cancel flags; a plain (non-blocking) connection. */
  redis: Redis;
  keys: RecoveryKeys;
  /** The recovery queue, for the delayed cleanup a drill schedules. */
  queue: Queue;
  /** dr.yaml as it is now: read per job, so apps added after the worker started are known. */
  config: () => Promise<LoadedConfig>;
  gateway: (config: LoadedConfig) => GatewayClient;
  kek: (config: LoadedConfig) => Promise<KeyEncryptionKey>;
  /** The provider of an app (undefined app: the operation's app is gone from dr.yaml; cleanup still runs). */
  provider?: (config: LoadedConfig, app: AppConfig | undefined, log: Logger) => Provider;
  log: Logger;
  /** How long an app lock lives without a refresh; 60 s by default. */
  lockTtlMs?: number;
  /** How often a running step looks for `dr cancel`; 500 ms by default. */
  cancelPollMs?: number;
  /**
   * Keep each app's last materialised images in DR_HOME/cache/images/<app> so the next drill or
   * failover fetches only what changed since (true by default; it costs one image's disk space).
   */
  imageCache?: boolean;
  /** false: never serve volumes on demand (tests of full materialisation); default follows dr.yaml. */
  instant?: boolean;
}

/** The app's settings in the worker's dr.yaml; `app_unknown` when the worker does not know it. */
export function workerApp(config: LoadedConfig, app: string): AppConfig {
  const appConfig = config.apps[app];
  if (appConfig) return appConfig;
  throw new DrError(`no app named ${JSON.stringify(app)} in the worker's dr.yaml`, {
    code: 'app_unknown',
    subject: app,
    remedy: `add it with \`dr app add ${app} …\` on the worker's DR_HOME`,
  });
}

/** DR_HOME/recovery: one directory per operation, holding its images and its local server. */
export const recoveryDir = (config: LoadedConfig) => join(config.home, 'recovery');

/** An app's image cache: its volumes at the last point a drill or failover materialised. */
export const imageCacheDir = (config: LoadedConfig, app: string) =>
  join(config.home, 'cache', 'images', app);

/** The variables the alicloud provider takes its access key from; never dr.yaml, never job data. */
export const ALICLOUD_KEY_ID = 'ALIBABA_CLOUD_ACCESS_KEY_ID';
export const ALICLOUD_KEY_SECRET = 'ALIBABA_CLOUD_ACCESS_KEY_SECRET';

/**
 * The provider dr.yaml names for an app; the local one when the app is gone (cleanup only).
 * The alicloud access key comes from `env` (the worker's environment); a missing one is a
 * permanent failure (`key_invalid`) that names the variable, never a value.
 */
export function defaultProvider(
  config: LoadedConfig,
  app: AppConfig | undefined,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Provider {
  const p = app?.provider;
  if (p?.kind === 'alicloud') {
    return lazyAlicloud({
      regionId: p.regionId,
      zoneId: p.zoneId,
      vSwitchId: p.vSwitchId,
      securityGroupId: p.securityGroupId,
      drillVSwitchId: p.drillVSwitchId,
      drillSecurityGroupId: p.drillSecurityGroupId,
      instanceType: p.instanceType,
      workerInstanceId: p.workerInstanceId,
      ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
      ...(p.protocol !== undefined ? { protocol: p.protocol } : {}),
      accessKeyId: credential(env, ALICLOUD_KEY_ID),
      accessKeySecret: credential(env, ALICLOUD_KEY_SECRET),
      ...(p.check !== undefined ? { healthCheck: healthCheck(p.check) } : {}),
      ...(p.diskCategory !== undefined ? { diskCategory: p.diskCategory } : {}),
      ...(p.performanceLevel !== undefined ? { performanceLevel: p.performanceLevel } : {}),
      ...(p.platform !== undefined ? { platform: p.platform } : {}),
      ...(p.architecture !== undefined ? { architecture: p.architecture } : {}),
      ...(p.bootMode !== undefined ? { bootMode: p.bootMode } : {}),
      ...(p.diskByIdDir !== undefined ? { diskByIdDir: p.diskByIdDir } : {}),
      ...(p.bootCheck !== undefined ? { bootCheck: p.bootCheck } : {}),
      ...(p.agentHome !== undefined ? { agentHome: p.agentHome } : {}),
      ...(p.agentCommand !== undefined ? { agentCommand: p.agentCommand } : {}),
      ...(p.pollInterval !== undefined ? { attachPoll: p.pollInterval } : {}),
    });
  }
  return createLocalProvider({
    dir: recoveryDir(config),
    ...(p?.start !== undefined ? { start: p.start } : {}),
    ...(p?.check !== undefined ? { check: p.check } : {}),
    ...(p?.freeze !== undefined ? { freeze: p.freeze } : {}),
    ...(p?.thaw !== undefined ? { thaw: p.thaw } : {}),
    log,
  });
}

function wayHome(p: Provider): WayHome {
  if (p.wayHome) return p.wayHome;
  throw new DrError(`the ${p.kind} provider has no way home`, {
    code: 'not_implemented',
    subject: p.kind,
  });
}

function credential(
  env: NodeJS.ProcessEnv,
  name: 'ALIBABA_CLOUD_ACCESS_KEY_ID' | 'ALIBABA_CLOUD_ACCESS_KEY_SECRET',
): string {
  const value = readEnv(name, env);
  if (value) return value;
  throw new DrError(`${name} is not set in the worker's environment`, {
    code: 'key_invalid',
    subject: name,
    remedy: `set ${name} (and its pair) for \`dr worker\`; credentials never go in dr.yaml`,
  });
}

/** dr.yaml's `check`: an http(s) URL (with {ip}) or a command (LIFEBOAT_SERVER_IP set). */
function healthCheck(check: string): HealthCheck {
  return /^https?:\/\//i.test(check) ? { url: check } : { command: check };
}

/**
 * The alicloud provider, loaded on first use: its SDK costs a third of a
 * second and 60 MB to load, which every `dr` process (the agent included)
 * would otherwise pay.
 */
function lazyAlicloud(options: AlicloudOptions): Provider {
  let loaded: Promise<Provider> | undefined;
  const provider = () => {
    loaded ??= import('../providers/alicloud-provider.js').then((m) =>
      m.createAlicloudProvider(options),
    );
    return loaded;
  };
  return {
    kind: 'alicloud',
    launch: async (req) => (await provider()).launch(req),
    // With the check off there is nothing to look at before a failover: no system volume fetched.
    ...(options.bootCheck === 'off'
      ? {}
      : { preflight: async (req: LaunchRequest) => (await provider()).preflight?.(req) ?? [] }),
    health: async (server, o) => (await provider()).health(server, o),
    stop: async (opId, log) => (await provider()).stop?.(opId, log) ?? false,
    wayHome: {
      start: async (req) => wayHome(await provider()).start(req),
      finalCut: async (req) => wayHome(await provider()).finalCut(req),
      agentLog: async (req) => wayHome(await provider()).agentLog(req),
      restart: async (opId, log) => wayHome(await provider()).restart(opId, log),
    },
    destroy: async (opId, log) => (await provider()).destroy(opId, log),
    leftovers: async () => (await provider()).leftovers(),
  };
}
