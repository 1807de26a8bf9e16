import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { DrError, systemCode } from '../../core/errors.js';
import type { HomePaths } from '../../core/home.js';

// Apart from certificates.ts, which only `dr init` needs: every other command
// reads the PEM files, and need not load the certificate library to do it.

/**
 * AES-128-GCM first: every block is already AES-256-GCM encrypted end to end,
 * so the channel's own cipher guards the metadata and takes the cheaper key
 * schedule on the hot path; the stronger suites remain acceptable.
 */
const TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/**
 * Options for `tls.createServer`: TLS 1.3 only, and every client must present
 * a certificate issued by this installation's CA (and no other).
 */
export function tlsServerOptions(paths: HomePaths): TlsOptions {
  return {
    ca: readPem(paths.caCert),
    cert: readPem(paths.gatewayCert),
    key: readPem(paths.gatewayKey),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    ciphers: TLS13_SUITES,
  };
}

/**
 * Options for `tls.connect` to the gateway: TLS 1.3, the agent certificate, and
 * trust in this installation's CA only. Pass the host being dialled: a DNS
 * name becomes the SNI server name; an IP address does not (SNI forbids it),
 * and Node then checks the address against the certificate's IP entries.
 */
export function tlsClientOptions(paths: HomePaths, host?: string): ConnectionOptions {
  const bare = host === undefined ? undefined : bareHost(host);
  return {
    ca: readPem(paths.caCert),
    cert: readPem(paths.agentCert),
    key: readPem(paths.agentKey),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    ciphers: TLS13_SUITES,
    ...(bare !== undefined && isIP(bare) === 0 ? { servername: bare } : {}),
  };
}

/** `[::1]` → `::1`; other hosts unchanged. */
export function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function readPem(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DrError(`cannot read TLS file ${path} (${systemCode(err) ?? 'read failed'})`, {
      code: 'tls_invalid',
      subject: path,
      remedy:
        'run `dr init` to create the certificates, or copy the tls/ directory from the home that issued them',
      cause: err,
    });
  }
  if (!text.includes('-----BEGIN ')) {
    throw new DrError(`TLS file ${path} is not PEM`, {
      code: 'tls_invalid',
      subject: path,
      remedy:
        'run `dr init` to create the certificates, or copy the tls/ directory from the home that issued them',
    });
  }
  return text;
}
