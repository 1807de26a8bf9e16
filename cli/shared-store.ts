/** `gateway.shared`: the object store served by several gateways, each app leased to one of them in Redis. */
import type { Redis } from 'ioredis';
import type { LoadedConfig } from '../core/config.js';
import { DrError } from '../core/errors.js';
import { homePaths } from '../core/home.js';
import { tryHostPort } from '../core/host-port.js';
import type { Logger } from '../core/log.js';
import { redisUrlFrom } from '../core/redis.js';
import { loadKeyEncryptionKey } from '../replicator/crypto/key-encryption-key.js';
import { GatewayLeases } from '../replicator/gateway/gateway-leases.js';
import { claimBucketKek, LeasedStore } from '../replicator/gateway/leased-store.js';
import { ObjectBucket } from '../replicator/gateway/object-bucket.js';
import { ObjectStore } from '../replicator/gateway/object-store.js';
import { openRedis, redisPrefix } from './recovery-connect.js';

/** Checks what a shared store needs (a bucket, Redis, an address agents can reach) and opens it. */
export async function openSharedStore({
  config,
  env,
  advertise,
  log,
}: {
  config: LoadedConfig;
  env: NodeJS.ProcessEnv;
  advertise: string;
  log: Logger;
}): Promise<{ store: LeasedStore; redis: Redis }> {
  if (!config.objectStore) {
    throw new DrError('gateway.shared needs an object store: several gateways share one bucket', {
      code: 'config_invalid',
      subject: 'gateway.shared',
      remedy: 'set gateway.store to s3://BUCKET[/PREFIX], or remove gateway.shared',
    });
  }
  const at = tryHostPort(advertise, 1);
  if (!at || at.host === '0.0.0.0' || at.host === '::') {
    throw new DrError(`gateway address ${advertise} cannot be named to agents in a redirect`, {
      code: 'config_invalid',
      subject: advertise,
      remedy:
        'pass dr gateway --advertise HOST:PORT (or gateway.advertise), the address agents reach this gateway at',
    });
  }
  if (!redisUrlFrom(env)) {
    throw new DrError('gateway.shared needs Redis: the app leases live there', {
      code: 'config_invalid',
      subject: 'REDIS_URL',
      remedy:
        'set REDIS_URL to the Redis every gateway of this bucket uses, or remove gateway.shared',
    });
  }
  const redis = await openRedis(env, 'lifeboat-gateway');
  try {
    const bucket = new ObjectBucket(config.objectStore);
    await bucket.check();
    // A gateway's home need not hold the KEK (it never unwraps); where it does, one per bucket.
    const kek = await loadKeyEncryptionKey(homePaths(config.home).kek).catch(() => undefined);
    if (kek) await claimBucketKek(bucket, kek.id.toString('hex'));
    const objects = await ObjectStore.open({
      dir: config.storeDir,
      bucket,
      log,
      directIo: config.gateway.directIo,
      leased: true,
    });
    const store = await LeasedStore.open(
      objects,
      (onLost) =>
        new GatewayLeases({
          redis,
          namespace: `${redisPrefix(env)}gateways:${bucket.url}`,
          address: advertise,
          onLost,
          log,
        }),
      log,
    );
    return { store, redis };
  } catch (err) {
    redis.disconnect();
    throw err;
  }
}
