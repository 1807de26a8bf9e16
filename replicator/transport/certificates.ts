import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { DrError } from '../../core/errors.js';
import { bareHost } from './tls-options.js';

/** PEM text of the certificates and keys `dr init` writes to DR_HOME/tls. */
export interface CertificateSet {
  caCert: string;
  caKey: string;
  gatewayCert: string;
  gatewayKey: string;
  agentCert: string;
  agentKey: string;
}

export interface CreateCertificatesOptions {
  /** Names and addresses agents use to reach the gateway; `localhost` and `127.0.0.1` are always added. */
  gatewayHosts: string[];
  /** How long the certificates are valid, in days (default ten years). */
  days?: number;
}

export const AGENT_COMMON_NAME = 'lifeboat-agent';
export const GATEWAY_COMMON_NAME = 'lifeboat-gateway';

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Backdates notBefore a little so a gateway whose clock runs behind still accepts new certificates. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * A private CA for one installation, a gateway server certificate and an agent
 * client certificate, all RSA 2048 signed with SHA-256.
 */
export function createCertificates({
  gatewayHosts,
  days = 3650,
}: CreateCertificatesOptions): CertificateSet {
  if (!Number.isInteger(days) || days < 1) {
    throw new DrError(`certificate lifetime must be a whole number of days, got ${days}`, {
      code: 'usage',
      subject: 'days',
      remedy: 'pass a positive number of days',
    });
  }
  const hosts = [...new Set([...gatewayHosts.map(bareHost), 'localhost', '127.0.0.1'])];
  for (const host of hosts) {
    if (isIP(host) === 0 && !DNS_NAME.test(host)) {
      throw new DrError(
        `gateway host ${JSON.stringify(host)} is neither an IP address nor a DNS name`,
        {
          code: 'usage',
          subject: host,
          remedy:
            'give the gateway as an IP address or a host name, like 10.0.0.5 or dr.example.com',
        },
      );
    }
  }

  const ca = newKeyPair();
  const caCert = newCertificate(ca.publicKey, days);
  const caName = [
    { name: 'commonName', value: `Lifeboat CA ${randomBytes(4).toString('hex')}` },
    { name: 'organizationName', value: 'Lifeboat' },
  ];
  caCert.setSubject(caName);
  caCert.setIssuer(caName);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(ca.privateKey, forge.md.sha256.create());
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();

  const issue = (
    commonName: string,
    extensions: object[],
  ): { cert: forge.pki.Certificate; keyPem: string } => {
    const pair = newKeyPair();
    const cert = newCertificate(pair.publicKey, days);
    cert.setSubject([
      { name: 'commonName', value: commonName },
      { name: 'organizationName', value: 'Lifeboat' },
    ]);
    cert.setIssuer(caCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
      ...extensions,
    ]);
    cert.sign(ca.privateKey, forge.md.sha256.create());
    return { cert, keyPem: pair.privateKeyPem };
  };

  const gateway = issue(GATEWAY_COMMON_NAME, [
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: hosts.map((host) =>
        isIP(host) === 0 ? { type: 2, value: host } : { type: 7, ip: host },
      ),
    },
  ]);
  const agent = issue(AGENT_COMMON_NAME, [{ name: 'extKeyUsage', clientAuth: true }]);

  return {
    caCert: forge.pki.certificateToPem(caCert),
    caKey: ca.privateKeyPem,
    gatewayCert: forge.pki.certificateToPem(gateway.cert),
    gatewayKey: gateway.keyPem,
    agentCert: forge.pki.certificateToPem(agent.cert),
    agentKey: agent.keyPem,
  };
}

interface KeyPair {
  publicKey: forge.pki.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
  privateKeyPem: string;
}

/** Node's key generation is native and far faster than forge's own. */
function newKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey),
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    privateKeyPem: privateKey,
  };
}

function newCertificate(publicKey: forge.pki.PublicKey, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now + days * 86_400_000);
  return cert;
}

/** 128 random bits as positive DER INTEGER hex (top bit clear, first byte non-zero). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}
