import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ConnectionOptions,
  connect,
  createServer,
  DEFAULT_CIPHERS,
  type Server,
  type TLSSocket,
} from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { type HomePaths, homePaths } from '../../../../core/home.js';
import {
  type CertificateSet,
  createCertificates,
} from '../../../../replicator/transport/certificates.js';
import {
  tlsClientOptions,
  tlsServerOptions,
} from '../../../../replicator/transport/tls-options.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

async function writeSet(home: string, set: CertificateSet): Promise<HomePaths> {
  const paths = homePaths(home);
  await mkdir(paths.tlsDir, { recursive: true });
  await writeFile(paths.caCert, set.caCert);
  await writeFile(paths.caKey, set.caKey);
  await writeFile(paths.gatewayCert, set.gatewayCert);
  await writeFile(paths.gatewayKey, set.gatewayKey);
  await writeFile(paths.agentCert, set.agentCert);
  await writeFile(paths.agentKey, set.agentKey);
  return paths;
}

/** A server that greets each client it accepts with the client certificate's CN, and counts them. */
async function startServer(
  options: ReturnType<typeof tlsServerOptions>,
): Promise<Server & { accepted: number }> {
  const server = Object.assign(
    createServer(options, (socket: TLSSocket) => {
      server.accepted++;
      const cn = socket.getPeerCertificate().subject?.CN ?? '?';
      socket.end(`hello ${cn} over ${socket.getProtocol()}`);
    }),
    { accepted: 0 },
  );
  server.on('tlsClientError', () => {
    // a refused handshake is what several tests expect; the client side reports it
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return server;
}

type Outcome = { ok: true; greeting: string } | { ok: false; code: string };

/** Connects and waits for the greeting: in TLS 1.3 the server judges the client certificate after the client's handshake ends. */
function talk(server: Server, options: ConnectionOptions, host = '127.0.0.1'): Promise<Outcome> {
  const { port } = server.address() as AddressInfo;
  return new Promise((done) => {
    let greeting = '';
    const socket = connect({ ...options, host, port });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      greeting += chunk;
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      done({ ok: false, code: err.code ?? err.message }),
    );
    socket.on('close', () =>
      done(greeting ? { ok: true, greeting } : { ok: false, code: 'closed' }),
    );
  });
}

describe('createCertificates and mutual TLS', () => {
  let dir: string;
  let ours: HomePaths;
  let theirs: HomePaths;
  let set: CertificateSet;
  let server: Server & { accepted: number };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-certs-'));
    set = createCertificates({ gatewayHosts: ['10.0.0.5', 'dr.example.com', '[::1]'] });
    ours = await writeSet(join(dir, 'ours'), set);
    theirs = await writeSet(
      join(dir, 'theirs'),
      createCertificates({ gatewayHosts: ['127.0.0.1'] }),
    );
    server = await startServer(tlsServerOptions(ours));
  });

  afterAll(async () => {
    await new Promise((done) => server.close(done));
    await rm(dir, { recursive: true, force: true });
  });

  it('completes a TLS 1.3 mutual handshake on 127.0.0.1 and the gateway sees the agent', async () => {
    const outcome = await talk(server, tlsClientOptions(ours, '127.0.0.1'));
    expect(outcome).toEqual({ ok: true, greeting: 'hello lifeboat-agent over TLSv1.3' });
  });

  it('verifies the gateway by DNS name through SNI (localhost)', async () => {
    const options = tlsClientOptions(ours, 'localhost');
    expect(options.servername).toBe('localhost');
    expect(tlsClientOptions(ours, '127.0.0.1').servername).toBeUndefined();
    const outcome = await talk(server, options, 'localhost');
    expect(outcome.ok).toBe(true);
  });

  it('refuses a client without a certificate', async () => {
    const before = server.accepted;
    const { ca } = tlsClientOptions(ours);
    const outcome = await talk(server, { ca, minVersion: 'TLSv1.3' });
    expect(outcome).toEqual({ ok: false, code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
    expect(server.accepted).toBe(before);
  });

  it('refuses a client whose certificate another CA issued', async () => {
    const before = server.accepted;
    const stranger = tlsClientOptions(theirs);
    const outcome = await talk(server, { ...stranger, ca: tlsClientOptions(ours).ca });
    // Node checks the client certificate after OpenSSL's handshake and then just closes the
    // socket, so the client sees the connection end with no greeting rather than an alert.
    expect(outcome.ok).toBe(false);
    expect(server.accepted).toBe(before);
  });

  it('refuses TLS 1.2', async () => {
    const before = server.accepted;
    const outcome = await talk(server, {
      ...tlsClientOptions(ours),
      ciphers: DEFAULT_CIPHERS, // offer TLS 1.2 suites, so the server is the one that refuses
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
    });
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.code).toMatch(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
    expect(server.accepted).toBe(before);
  });

  it('lets the agent refuse a gateway whose certificate another CA issued', async () => {
    const impostor = await startServer(tlsServerOptions(theirs));
    try {
      const outcome = await talk(impostor, tlsClientOptions(ours, '127.0.0.1'));
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) {
        expect(outcome.code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      }
      expect(impostor.accepted).toBe(0);
    } finally {
      await new Promise((done) => impostor.close(done));
    }
  });

  it('issues a CA, a gateway certificate naming every host, and a client-only agent certificate', () => {
    const ca = new X509Certificate(set.caCert);
    const gateway = new X509Certificate(set.gatewayCert);
    const agent = new X509Certificate(set.agentCert);
    expect(ca.ca).toBe(true);
    expect(gateway.ca).toBe(false);
    expect(gateway.verify(ca.publicKey)).toBe(true);
    expect(agent.verify(ca.publicKey)).toBe(true);
    expect(gateway.checkIP('10.0.0.5')).toBe('10.0.0.5');
    expect(gateway.checkIP('::1')).toBe('::1');
    expect(gateway.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(gateway.checkHost('dr.example.com')).toBe('dr.example.com');
    expect(gateway.checkHost('localhost')).toBe('localhost');
    expect(gateway.checkHost('10.0.0.5')).toBeUndefined(); // an IP is not listed as a DNS name
    expect(gateway.keyUsage).toEqual([SERVER_AUTH]);
    expect(agent.keyUsage).toEqual([CLIENT_AUTH]);
    expect(agent.subject).toContain('CN=lifeboat-agent');
    expect(gateway.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(new Set([ca.serialNumber, gateway.serialNumber, agent.serialNumber]).size).toBe(3);
    const other = new X509Certificate(createCertificates({ gatewayHosts: [] }).caCert);
    expect(other.serialNumber).not.toBe(ca.serialNumber);
    expect(gateway.fingerprint256).not.toBe(other.fingerprint256);
  });

  it('honours the lifetime in days', () => {
    const cert = new X509Certificate(createCertificates({ gatewayHosts: [], days: 30 }).agentCert);
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    expect(Math.round(lifetime / 86_400_000)).toBe(30);
  });

  it('rejects a gateway host that is neither an address nor a name', () => {
    expect(() => createCertificates({ gatewayHosts: ['bad host!'] })).toThrow(/"bad host!"/);
  });

  it('names the missing file and says to run dr init', async () => {
    const paths = await writeSet(join(dir, 'partial'), set);
    await unlink(paths.agentKey);
    let caught: unknown;
    try {
      tlsClientOptions(paths);
    } catch (err) {
      caught = err;
    }
    expect(isDrError(caught, 'tls_invalid')).toBe(true);
    expect((caught as Error).message).toContain(paths.agentKey);
    expect((caught as Error).message).toContain('run `dr init`');
    expect(() => tlsServerOptions(homePaths(join(dir, 'nowhere')))).toThrow(/ca\.crt.*dr init/);
  });
});
