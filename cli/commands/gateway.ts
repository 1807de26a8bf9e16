import type { Command } from 'commander';
import { homePaths } from '../../core/home.js';
import { connectRedis, redisUrlFrom } from '../../core/redis.js';
import { watchRedis } from '../../core/redis-outage.js';
import { BlockStore } from '../../replicator/gateway/block-store.js';
import { createGateway } from '../../replicator/gateway/gateway-server.js';
import type { GatewayStore } from '../../replicator/gateway/gateway-store.js';
import { ObjectBucket } from '../../replicator/gateway/object-bucket.js';
import { ObjectStore } from '../../replicator/gateway/object-store.js';
import { startStatePublisher } from '../../replicator/gateway/state-publisher.js';
import { tlsServerOptions } from '../../replicator/transport/tls-options.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { contextOf, type ExitState, runAction } from '../context.js';
import type { HttpServer } from '../http-server.js';
import { createGatewayMetrics } from '../metrics/gateway-metrics.js';
import { metricsRoute } from '../metrics/metrics-route.js';
import { redisPrefix } from '../recovery-connect.js';
import { openSharedStore } from '../shared-store.js';
import { stopSignal } from '../stop-signal.js';
import { accessRuleFrom } from '../web/access-rule.js';
import { startWebServer } from '../web/web-server.js';

export function registerGateway(program: Command, exit: ExitState): void {
  program
    .command('gateway')
    .description('run the DR-site receiver: stores encrypted blocks and commits recovery points')
    .option('--listen <host:port>', 'address to listen on (default: gateway.listen in dr.yaml)')
    .option(
      '--advertise <host:port>',
      'with gateway.shared: the address agents reach this gateway at, named in redirects (default: gateway.advertise, else the listen address)',
    )
    .option(
      '--metrics <host:port>',
      'serve Prometheus metrics over plain HTTP at http://HOST:PORT/metrics (default: gateway.metrics in dr.yaml; off when neither is set)',
    )
    .action(async (opts: { listen?: string; advertise?: string; metrics?: string }, cmd: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const log = ctx.log.child({ part: 'gateway' });
        const redisUrl = redisUrlFrom(ctx.env); // checked before anything starts
        if (redisUrl) redisPrefix(ctx.env);
        const metricsAt = opts.metrics ?? config.gateway.metrics;
        const access = accessRuleFrom(ctx.env);
        const stopping = stopSignal({
          part: 'dr gateway',
          abandons:
            'batches not yet acknowledged are sent again by their agents; acknowledged ones are on disk',
          env: ctx.env,
        });
        const where = config.objectStore
          ? `${config.gateway.store}, write-ahead log ${config.storeDir}`
          : config.storeDir;
        const listen = opts.listen ?? config.gateway.listen;
        const shared = config.gateway.shared
          ? await openSharedStore({
              config,
              env: ctx.env,
              advertise: opts.advertise ?? config.gateway.advertise ?? listen,
              log,
            })
          : undefined;
        const store: GatewayStore =
          shared?.store ??
          (config.objectStore
            ? await ObjectStore.open({
                dir: config.storeDir,
                bucket: new ObjectBucket(config.objectStore),
                log,
                directIo: config.gateway.directIo,
              })
            : await BlockStore.open({
                dir: config.storeDir,
                log,
                directIo: config.gateway.directIo,
              }));
        // The gateway's statuses exist only once it runs; metrics read them through this late binding.
        let statuses: () => AppStatus[] = () => [];
        const metrics = metricsAt ? await createGatewayMetrics(() => statuses()) : undefined;
        const gateway = await createGateway({
          store,
          listen,
          tls: tlsServerOptions(homePaths(config.home)),
          retention: config.retention,
          minFreeSpace: config.gateway.minFreeSpace,
          log,
          ...(metrics ? { onBatch: metrics.onBatch } : {}),
          ...(shared ? { placement: shared.store } : {}),
          ...(config.gateway.recordStreams !== undefined
            ? { recordStreams: config.gateway.recordStreams }
            : {}),
        });
        statuses = gateway.statuses;
        ctx.out(
          `gateway listening on ${gateway.address} (store ${where}${shared ? `, shared: apps leased in Redis, advertised as ${shared.store.leases.address}` : ''})`,
        );
        let metricsServer: HttpServer | undefined;
        if (metrics && metricsAt) {
          try {
            metricsServer = await startWebServer({
              listen: metricsAt,
              routes: [metricsRoute(metrics.registry, access)],
              access,
              what: opts.metrics ? '--metrics' : 'gateway.metrics (dr.yaml)',
              log,
            });
          } catch (err) {
            await gateway.close();
            throw err;
          }
          ctx.out(`metrics at http://${metricsServer.address}/metrics`);
        }
        // The engine reads replication state from Redis; the agent never needs it.
        const redis =
          shared?.redis ?? (redisUrl ? connectRedis(redisUrl, 'lifeboat-gateway') : undefined);
        if (redis) watchRedis(redis, log, 'gateway state publisher');
        const publisher = redis
          ? startStatePublisher({
              redis,
              statuses: gateway.statuses,
              prefix: redisPrefix(ctx.env),
              log,
            })
          : undefined;
        if (redis) ctx.out('publishing replication state to Redis (REDIS_URL)');
        await stopping.requested;
        log.info('stopping');
        await metricsServer?.close();
        await publisher?.stop();
        // The gateway first: a shared one hands its app leases back through Redis as it closes.
        await gateway.close();
        redis?.disconnect();
        stopping.dispose();
        return 0;
      }),
    );
}
