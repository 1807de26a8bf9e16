// The reader's side of sealed record streams against a stand-in gateway: a port that cannot be
// reached falls back to TLS, an answer that does not prove the key is refused, a malformed offer
// is an error, a proven stream shorter or longer than it announced is an error (never taken as
// the range's records), and the records land whole either way.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import {
  type AddressInfo,
  createServer as createTcpServer,
  type Server as TcpServer,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../../../core/home.js';
import {
  ANSWER_BYTES,
  answerOf,
  BULK_HEADER,
  HELLO_BYTES,
  parseKey,
} from '../../../../replicator/transport/bulk-stream.js';
import { createCertificates } from '../../../../replicator/transport/certificates.js';
import { GatewayClient } from '../../../../replicator/transport/gateway-client.js';
import { fetchRecordsInto } from '../../../../replicator/transport/record-fetch.js';
import {
  tlsClientOptions,
  tlsServerOptions,
} from '../../../../replicator/transport/tls-options.js';
import { freePort } from '../../../helpers/lifeboat-home.js';

const BODY = Buffer.from('records '.repeat(5000));

describe('fetchRecordsInto with sealed streams', { timeout: 60_000 }, () => {
  let dir: string;
  let paths: ReturnType<typeof homePaths>;
  const servers: Array<Server | TcpServer> = [];
  const clients: GatewayClient[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-fetch-'));
    paths = homePaths(dir);
    const set = createCertificates({ gatewayHosts: ['127.0.0.1'] });
    await mkdir(paths.tlsDir, { recursive: true });
    await writeFile(paths.caCert, set.caCert);
    await writeFile(paths.gatewayCert, set.gatewayCert);
    await writeFile(paths.gatewayKey, set.gatewayKey);
    await writeFile(paths.agentCert, set.agentCert);
    await writeFile(paths.agentKey, set.agentKey);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(() => r(undefined)));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** A TLS gateway stand-in: `offer(key)` names what to answer a request carrying a key with. */
  async function gateway(offer: (key: Buffer) => string | undefined) {
    const seen: Array<string | undefined> = [];
    const server = createHttpsServer(
      { ...tlsServerOptions(paths), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const raw = req.headers[BULK_HEADER];
        seen.push(typeof raw === 'string' ? raw : undefined);
        const key = parseKey(raw);
        const o = key && offer(key);
        if (o !== undefined) {
          res.writeHead(200, { [BULK_HEADER]: o, 'content-length': 0 });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-length': BODY.length });
        res.end(BODY);
      },
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const client = new GatewayClient({
      address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
      tls: tlsClientOptions(paths, '127.0.0.1'),
      timeoutMs: 30_000,
    });
    clients.push(client);
    return { client, seen };
  }

  async function fetchAll(client: GatewayClient): Promise<Buffer> {
    const slab = Buffer.alloc(1 << 20);
    let used = 0;
    await fetchRecordsInto(
      client,
      { app: 'web', point: 1, volume: 'data', range: { from: 0, to: 10 } },
      {
        space: () => slab.subarray(used),
        landed: (n) => {
          used += n;
          return true;
        },
      },
    ).done;
    return Buffer.from(slab.subarray(0, used));
  }

  it('falls back to TLS when the offered port cannot be reached, and stays there', async () => {
    const closed = await freePort(); // nothing listens there
    const { client, seen } = await gateway(() => `${closed} ${'ab'.repeat(16)}`);
    expect((await fetchAll(client)).equals(BODY)).toBe(true);
    // Asked with a key, then again without one once the port refused.
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(seen[1]).toBeUndefined();
    // The next fetch from this gateway does not try the port again.
    expect((await fetchAll(client)).equals(BODY)).toBe(true);
    expect(seen[2]).toBeUndefined();
  });

  it('refuses an answer on the sealed stream that does not prove the key', async () => {
    const impostor = createTcpServer((s) => {
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        // A full answer head and body, under no key the reader gave.
        if (got >= HELLO_BYTES) s.end(Buffer.alloc(ANSWER_BYTES + 100, 1));
      });
    });
    servers.push(impostor);
    await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', () => r()));
    const port = (impostor.address() as AddressInfo).port;
    const { client } = await gateway(() => `${port} ${'cd'.repeat(16)}`);
    await expect(fetchAll(client)).rejects.toMatchObject({
      code: 'gateway_unreachable',
      message: /did not prove it came from the gateway/,
    });
  });

  /** A sealed-stream stand-in that proves the key and sends `send(answer head)` after the hello. */
  async function sealedStandIn(send: (head: Buffer) => Buffer) {
    const ticket = Buffer.alloc(16, 0xef);
    let key: Buffer | undefined;
    const server = createTcpServer((s) => {
      s.on('error', () => undefined); // the reader cuts a stream it refuses
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= HELLO_BYTES) s.end(send(answerOf(key as Buffer, ticket, 200, BODY.length)));
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    return gateway((k) => {
      key = k;
      return `${port} ${ticket.toString('hex')}`;
    });
  }

  it('a proven stream that ends before its announced length is an error, not fewer records', async () => {
    const { client } = await sealedStandIn((head) =>
      Buffer.concat([head, BODY.subarray(0, BODY.length / 2)]),
    );
    await expect(fetchAll(client)).rejects.toMatchObject({
      code: 'gateway_unreachable',
      message: /ended early/,
    });
    // An answer head alone (no record at all) is no empty range either.
    const bare = await sealedStandIn((head) => head);
    await expect(fetchAll(bare.client)).rejects.toMatchObject({ code: 'gateway_unreachable' });
  });

  it('a proven stream that sends more than its announced length is an error', async () => {
    const { client } = await sealedStandIn((head) => Buffer.concat([head, BODY, BODY]));
    await expect(fetchAll(client)).rejects.toMatchObject({
      code: 'gateway_unreachable',
      message: /more bytes than the announced length/,
    });
  });

  it('names a malformed offer', async () => {
    const { client } = await gateway(() => 'port 80');
    await expect(fetchAll(client)).rejects.toMatchObject({
      code: 'gateway_unreachable',
      message: new RegExp(`malformed ${BULK_HEADER}`),
    });
  });
});
