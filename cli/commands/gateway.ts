import type { Command } from 'commander';
import { homePaths } from '../../core/home.js';
import { BlockStore } from '../../replicator/gateway/block-store.js';
import { createGateway } from '../../replicator/gateway/gateway-server.js';
import { tlsServerOptions } from '../../replicator/transport/certificates.js';
import { contextOf, type ExitState, runAction } from '../context.js';

export function registerGateway(program: Command, exit: ExitState): void {
  program
    .command('gateway')
    .description('run the DR-site receiver: stores encrypted blocks and commits recovery points')
    .option('--listen <host:port>', 'address to listen on (default: gateway.listen in dr.yaml)')
    .action(async (opts: { listen?: string }, cmd: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const log = ctx.log.child({ part: 'gateway' });
        const store = await BlockStore.open({ dir: config.storeDir, log });
        const gateway = await createGateway({
          store,
          listen: opts.listen ?? config.gateway.listen,
          tls: tlsServerOptions(homePaths(config.home)),
          retention: config.retention,
          minFreeSpace: config.gateway.minFreeSpace,
          log,
        });
        ctx.out(`gateway listening on ${gateway.address} (store ${config.storeDir})`);
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        log.info('stopping');
        await gateway.close();
        return 0;
      }),
    );
}
