import type { AppConfig } from '../../core/config.js';
import { DrError } from '../../core/errors.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import { volumeKeysOf } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { FailbackSteps, FailbackVolume, RecoveryJobData } from './recovery-contract.js';
import type { RecoveryDeps } from './recovery-deps.js';

/** The failover being undone: the gateway's mark names it, its job's steps say what it made. */
export async function findFailover(
  deps: RecoveryDeps,
  client: GatewayClient,
  app: string,
  appConfig: AppConfig,
): Promise<NonNullable<FailbackSteps['found']>> {
  const p = await client.protection(app);
  if (p.state !== 'failed-over' || !p.opId) {
    throw new DrError(`${app} is not failed over: there is nothing to fail back`, {
      code: 'not_failed_over',
      subject: app,
      remedy: `see \`dr status ${app}\`; its agent replicates to the DR site as usual`,
    });
  }
  const failover = await deps.queue.getJob(p.opId);
  const steps = (failover?.data as RecoveryJobData | undefined)?.steps;
  if (failover?.name !== 'failover' || !steps?.launched || !steps.materialised) {
    throw new DrError(
      `the failover ${p.opId} of ${app} is not in the queue with a running server (its record expired, or it never launched)`,
      {
        code: 'not_failed_over',
        subject: p.opId,
        remedy: `copy the recovered volumes back by hand, then clear the mark with a new failover and failback, or ask an operator to reset ${app}'s protection`,
      },
    );
  }
  const volumes: FailbackVolume[] = steps.materialised.volumes.map((v) => {
    const original = appConfig.volumes.find((c) => c.name === v.name);
    if (!original) {
      throw new DrError(`volume ${v.name} of ${app} is no longer in dr.yaml`, {
        code: 'app_unknown',
        subject: `${app}/${v.name}`,
        remedy: `add it back to ${app} in dr.yaml with its original path`,
      });
    }
    return { name: v.name, image: v.path, original: original.path, size: v.size };
  });
  return {
    failoverOpId: p.opId,
    point: steps.resolved?.point ?? 0,
    server: steps.launched.server,
    volumes,
  };
}

export async function volumeMacKeys(
  client: GatewayClient,
  kek: KeyEncryptionKey,
  app: string,
  volumes: FailbackVolume[],
): Promise<Map<string, { mac: Buffer; blockSize: number }>> {
  const detail = await client.point(app, 'latest');
  const out = new Map<string, { mac: Buffer; blockSize: number }>();
  for (const v of volumes) {
    const info = detail.volumeInfo.find((i) => i.name === v.name);
    if (!info) {
      throw new DrError(`the gateway has no key for volume ${v.name} of ${app}`, {
        code: 'store_corrupt',
        subject: `${app}/${v.name}`,
        remedy: 'check that the worker uses the gateway the app was replicated to',
      });
    }
    const keys = volumeKeysOf(kek, app, info);
    out.set(v.name, { mac: keys.mac, blockSize: info.blockSize });
  }
  return out;
}
