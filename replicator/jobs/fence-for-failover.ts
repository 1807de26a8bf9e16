/** A failover's first change: replication into the replica stopped, then the source fenced. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import { fenceSource } from '../recovery/fence-source.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { FenceOutcome } from './recovery-contract.js';

/** Beyond the app's quiesce timeout: a cut that began just as replication was stopped ends too. */
const FREEZE_MARGIN_MS = 1000;

/** Marks the app failed over by `opId` at the gateway: from here the agent's batches are refused. */
export async function stopReplication(
  client: GatewayClient,
  app: string,
  opId: string,
): Promise<void> {
  await client.setProtection(app, { state: 'failed-over', opId });
}

/**
 * Runs the app's fence command so the source stops taking writes nobody replicates any more
 * (split brain). The agent may be inside a cut: a file system unmounted while frozen stays frozen
 * and holds its device. Its freeze ends within the quiesce timeout (a watchdog sees to it) and its
 * next call is refused, so the fence waits that long first.
 */
export async function fenceAfterStop(
  app: string,
  opId: string,
  appConfig: AppConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<FenceOutcome> {
  if (appConfig.fence !== undefined && appConfig.quiesce)
    await sleep(appConfig.quiesce.timeout + FREEZE_MARGIN_MS, undefined, { signal });
  return fenceSource(app, opId, appConfig, log);
}
