/** What held in issue 15's probes, kept so: mutual TLS against foreign, expired and self-signed certificates; malformed batches. */
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../../core/home.js';
import { BlockStore } from '../../../replicator/gateway/block-store.js';
import { createGateway, type Gateway } from '../../../replicator/gateway/gateway-server.js';
import { encodeBatch } from '../../../replicator/transport/batch-codec.js';
import { createCertificates } from '../../../replicator/transport/certificates.js';
import type { AppStatus } from '../../../replicator/transport/wire-types.js';
import { gatewayRequest } from '../../helpers/gateway-request.js';
import { dr, type TestHome, testHome, writeImage } from '../../helpers/lifeboat-home.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const DAY = 86_400_000;

/** A client certificate for `lifeboat-agent`, signed by `issuer` (itself when absent), valid in [from, to]. */
function clientCert(
  from: Date,
  to: Date,
  issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey },
): { cert: string; key: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = '0a';
  cert.validity.notBefore = from;
  cert.validity.notAfter = to;
  const subject = [{ name: 'commonName', value: 'lifeboat-agent' }];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  cert.sign(
    issuer?.key ?? (forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey),
    forge.md.sha256.create(),
  );
  return { cert: forge.pki.certificateToPem(cert), key: privateKey };
}

describe('transport and batches (what held, kept so)', () => {
  let t: TestHome;
  let g: Gateway;
  beforeEach(async () => {
    t = await testHome();
    const img = join(t.dir, 'a.img');
    await writeImage(img, 256 * 1024, 1);
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`])).code).toBe(
      0,
    );
    g = await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('refuses clients with an expired, a self-signed or a foreign certificate', async () => {
    const paths = homePaths(t.home);
    const ca = {
      cert: forge.pki.certificateFromPem(await readFile(paths.caCert, 'utf8')),
      key: forge.pki.privateKeyFromPem(
        await readFile(paths.caKey, 'utf8'),
      ) as forge.pki.rsa.PrivateKey,
    };
    const now = Date.now();
    const foreign = createCertificates({ gatewayHosts: [] });
    const cases: Array<[string, { cert: string; key: string }]> = [
      ['expired, from our CA', clientCert(new Date(now - 30 * DAY), new Date(now - DAY), ca)],
      ['not yet valid, from our CA', clientCert(new Date(now + DAY), new Date(now + 30 * DAY), ca)],
      ['self-signed', clientCert(new Date(now - DAY), new Date(now + DAY))],
      ['from another CA', { cert: foreign.agentCert, key: foreign.agentKey }],
    ];
    // The control: our own certificate from our CA, made the same way, is let in.
    const good = await gatewayRequest(
      t.home,
      g.address,
      'GET',
      '/v1/status',
      undefined,
      clientCert(new Date(now - DAY), new Date(now + DAY), ca),
    );
    expect(good.status).toBe(200);
    for (const [what, tls] of cases) {
      const outcome = await gatewayRequest(t.home, g.address, 'GET', '/v1/status', undefined, tls)
        .then((r) => `answered ${r.status}`)
        .catch((err: NodeJS.ErrnoException) => `refused (${err.code ?? err.message})`);
      expect({ what, outcome }).toEqual({ what, outcome: expect.stringMatching(/^refused/) });
    }
  });

  it("refuses a gateway whose certificate is not from the home's CA", async () => {
    const foreign = createCertificates({ gatewayHosts: [] });
    const store = await BlockStore.open({ dir: join(t.dir, 'impostor-store') });
    const impostor = await createGateway({
      store,
      listen: '127.0.0.1:0',
      tls: { cert: foreign.gatewayCert, key: foreign.gatewayKey, ca: foreign.caCert },
      retention: (await t.config()).retention,
    });
    try {
      const r = await dr(['--home', t.home, 'points', 'web'], {
        ...quiet,
        DR_GATEWAY: impostor.address,
      });
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/TLS with the gateway at .* failed/);
    } finally {
      await impostor.close();
    }
  });

  it('refuses malformed batches with 400 and stores nothing', async () => {
    const send = (method: string, path: string, body?: unknown, headers = {}) =>
      gatewayRequest(t.home, g.address, method, path, body, {}, headers);
    const before = JSON.parse((await send('GET', '/v1/status?app=web')).body)[0] as AppStatus;
    const session = await send('POST', '/v1/apps/web/session', {
      agentId: 'probe',
      host: 'probe',
      pid: 1,
      volumes: [],
    });
    const sessionId = JSON.parse(session.body).sessionId as string;
    const head = Buffer.concat(encodeBatch(999, [], 3)); // says 3 records, holds none
    const bad: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['random bytes', Buffer.from('not a batch at all, just words')],
      ['a header promising records it lacks', head],
      ['a header cut short', head.subarray(0, 9)],
      ['a record of garbage', Buffer.concat([...encodeBatch(1000, [Buffer.alloc(64, 7)])])],
    ];
    for (const [what, body] of bad) {
      const r = await send('POST', '/v1/apps/web/batches', body, {
        'x-lifeboat-session': sessionId,
      });
      expect({ what, status: r.status }).toEqual({ what, status: 400 });
      expect(JSON.parse(r.body).error.message).toMatch(/batch refused/);
    }
    await send('DELETE', `/v1/apps/web/session?id=${sessionId}`);
    const after = JSON.parse((await send('GET', '/v1/status?app=web')).body)[0] as AppStatus;
    expect(after.storedBytes).toBe(before.storedBytes);
    expect(after.points).toBe(before.points);
    const v = await dr(['--home', t.home, 'verify', 'web'], quiet);
    expect(v.out).toContain('verify: ok');
  });
});
