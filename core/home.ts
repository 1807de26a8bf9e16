import { resolve } from 'node:path';
import { readEnv } from './env.js';

/** Where everything of one Lifeboat installation lives. */
export interface HomePaths {
  home: string;
  config: string;
  kek: string;
  tlsDir: string;
  caCert: string;
  caKey: string;
  gatewayCert: string;
  gatewayKey: string;
  agentCert: string;
  agentKey: string;
  stateDir: string;
}

/** DR_HOME from a flag, else the environment, else ./.lifeboat. */
export function resolveHome(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? readEnv('DR_HOME', env));
}

export function homePaths(home: string): HomePaths {
  const h = resolve(home);
  return {
    home: h,
    config: resolve(h, 'dr.yaml'),
    kek: resolve(h, 'keys', 'kek.key'),
    tlsDir: resolve(h, 'tls'),
    caCert: resolve(h, 'tls', 'ca.crt'),
    caKey: resolve(h, 'tls', 'ca.key'),
    gatewayCert: resolve(h, 'tls', 'gateway.crt'),
    gatewayKey: resolve(h, 'tls', 'gateway.key'),
    agentCert: resolve(h, 'tls', 'agent.crt'),
    agentKey: resolve(h, 'tls', 'agent.key'),
    stateDir: resolve(h, 'state'),
  };
}
