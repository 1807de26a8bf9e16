/** Raw HTTPS requests to a test gateway with the home's agent certificate, as an attacker holding it would send. */
import { request } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { homePaths } from '../../core/home.js';
import { tlsClientOptions } from '../../replicator/transport/tls-options.js';

export interface RawAnswer {
  status: number;
  body: string;
}

/** Sends one request (path sent as given, escapes and all) and reads the whole answer. */
export function gatewayRequest(
  home: string,
  address: string,
  method: string,
  path: string,
  body?: unknown,
  /** TLS options that replace the home's (another certificate, say). */
  tls: ConnectionOptions = {},
  headers: Record<string, string> = {},
): Promise<RawAnswer> {
  const [, host, port] = /^\[?([^\]]+)\]?:(\d+)$/.exec(address) ?? [];
  const binary = Buffer.isBuffer(body);
  const text = body === undefined ? undefined : binary ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...tlsClientOptions(homePaths(home), '127.0.0.1'),
        ...tls,
        host,
        port: Number(port),
        method,
        path,
        agent: false,
        timeout: 30_000,
        headers: {
          ...headers,
          ...(text
            ? {
                'content-type': binary ? 'application/octet-stream' : 'application/json',
                'content-length': Buffer.byteLength(text),
              }
            : {}),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(text);
  });
}
