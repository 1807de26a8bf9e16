/** A gateway client for the engine, from its home's address and TLS files (points, plan points). */
import { homePaths } from '../core/home.js';
import { GatewayClient } from '../replicator/transport/gateway-client.js';
import { tlsClientOptions } from '../replicator/transport/tls-options.js';
import type { EngineContext } from './engine-context.js';

/** The caller closes it. */
export function engineGateway(ctx: Pick<EngineContext, 'config' | 'home'>): GatewayClient {
  const host = ctx.config.gateway.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return new GatewayClient({
    address: ctx.config.gateway.address,
    addresses: ctx.config.gateway.addresses,
    tls: tlsClientOptions(homePaths(ctx.home), host),
    timeoutMs: 10_000,
  });
}
