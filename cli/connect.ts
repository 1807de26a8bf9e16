import type { LoadedConfig } from '../core/config.js';
import { homePaths } from '../core/home.js';
import {
  type KeyEncryptionKey,
  loadKeyEncryptionKey,
} from '../replicator/crypto/key-encryption-key.js';
import { GatewayClient } from '../replicator/transport/gateway-client.js';
import { tlsClientOptions } from '../replicator/transport/tls-options.js';

/** A client for the gateway named in dr.yaml (or DR_GATEWAY), with this home's agent certificate. */
export function gatewayClient(config: LoadedConfig, timeoutMs?: number): GatewayClient {
  const host = config.gateway.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return new GatewayClient({
    address: config.gateway.address,
    addresses: config.gateway.addresses,
    tls: tlsClientOptions(homePaths(config.home), host),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

export function loadKek(config: LoadedConfig): Promise<KeyEncryptionKey> {
  return loadKeyEncryptionKey(homePaths(config.home).kek);
}
