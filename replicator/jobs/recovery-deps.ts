import { join } from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AppConfig, LoadedConfig } from '../../core/config.js';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import { createLocalProvider } from '../providers/local-provider.js';
import type { Provider } from '../providers/provider.js';
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
}

/** DR_HOME/recovery: one directory per operation, holding its images and its local server. */
export const recoveryDir = (config: LoadedConfig) => join(config.home, 'recovery');

/** The provider dr.yaml names for an app; the local one when the app is gone (cleanup only). */
export function defaultProvider(
  config: LoadedConfig,
  app: AppConfig | undefined,
  log: Logger,
): Provider {
  const p = app?.provider;
  if (p?.kind === 'alicloud') {
    throw new DrError('the alicloud provider is not wired into the recovery worker yet', {
      code: 'not_implemented',
      subject: 'provider.kind',
      remedy: 'use provider kind local for this app for now',
    });
  }
  return createLocalProvider({
    dir: recoveryDir(config),
    ...(p?.start !== undefined ? { start: p.start } : {}),
    ...(p?.check !== undefined ? { check: p.check } : {}),
    log,
  });
}
