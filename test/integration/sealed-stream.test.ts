// Sealed record streams: a restore's records come over plain TCP once a mutual-TLS request got a
// ticket; only a reader that proves the request's key gets them, each ticket once; a bad answer
// or offer is an error; the image is byte-exact as over TLS.
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ANSWER_BYTES,
  BULK_HEADER,
  bulkProof,
  helloOf,
  parseKey,
  parseOffer,
  readAnswer,
} from '../../replicator/transport/bulk-stream.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { dr, freePort, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { restoreLatestHere } from '../helpers/restore.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const SIZE = 8 * 1024 * 1024 + 4_321;

describe('sealed record streams', { timeout: 180_000 }, () => {
  let t: TestHome;
  let source: Buffer;
  let client: GatewayClient;
  let proxy: TcpProxy | undefined;

  beforeEach(async () => {
    t = await testHome();
    const path = join(t.dir, 'data.src');
    source = await writeImage(path, SIZE, 5);
    expect(
      (await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${path}`])).code,
    ).toBe(0);
    await t.startGateway();
    const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(once.code).toBe(0);
    client = await t.client();
  });

  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    await t.cleanup();
  });

  /** Asks for the point's records over mutual TLS with `key`: the gateway's answer head. */
  async function ask(key: string): Promise<{ status: number; offer?: string; length: number }> {
    const point = await client.point('web', 'latest');
    const [host, port] = client.address.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...client.options.tls,
          host,
          port: Number(port),
          path: `/v1/apps/web/points/${point.id}/volumes/data/records`,
          headers: { [BULK_HEADER]: key },
        },
        (res) => {
          let length = 0;
          res.on('data', (c: Buffer) => {
            length += c.length;
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              length,
              ...(typeof res.headers[BULK_HEADER] === 'string'
                ? { offer: res.headers[BULK_HEADER] }
                : {}),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** Sends `hello` to the sealed-stream port; every byte that came back once the gateway closed. */
  function exchange(port: number, hello: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const s: Socket = connect({ host: '127.0.0.1', port }, () => s.write(hello));
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(parts)));
    });
  }

  it('restores byte-exact with the records off the TLS connection', async () => {
    // The client reaches the gateway's TLS port through a proxy that counts what it carries.
    proxy = await startTcpProxy(client.address);
    const viaProxy = new GatewayClient({ ...client.options, address: `127.0.0.1:${proxy.port}` });
    try {
      const out = await restoreLatestHere(t, viaProxy, 'data', join(t.dir, 'out.img'));
      expect(out.equals(source)).toBe(true);
    } finally {
      viaProxy.close();
    }
    // The TLS connections carried the questions and tickets, not the 8 MiB of records.
    const carried = proxy.downstream.reduce((n, b) => n + b, 0);
    expect(carried).toBeGreaterThan(0);
    expect(carried).toBeLessThan(SIZE / 8);
  });

  it('gives the records only for the proof of the key, and each ticket once', async () => {
    const key = randomBytes(32);
    const a = await ask(key.toString('hex'));
    expect(a.status).toBe(200);
    expect(a.length).toBe(0);
    const offer = parseOffer(a.offer ?? '');
    expect(offer).toBeDefined();
    const { port, ticket } = offer as { port: number; ticket: Buffer };
    // Another key's proof: closed without a byte, and the ticket is spent.
    expect(await exchange(port, helloOf(randomBytes(32), ticket))).toHaveLength(0);
    expect(await exchange(port, helloOf(key, ticket))).toHaveLength(0);
    // A fresh ticket with the right proof: the gateway proves itself, then the records.
    const b = await ask(key.toString('hex'));
    const fresh = parseOffer(b.offer ?? '') as { port: number; ticket: Buffer };
    const got = await exchange(fresh.port, helloOf(key, fresh.ticket));
    const answer = readAnswer(key, fresh.ticket, got.subarray(0, ANSWER_BYTES));
    expect(answer).toMatchObject({ status: 200 });
    expect(got.length - ANSWER_BYTES).toBe(answer?.length);
    expect(got.length).toBeGreaterThan(SIZE / 2);
    // Nothing in clear names the key or repeats the hello's proof.
    expect(got.includes(key)).toBe(false);
    // The answer under another key does not read as the gateway's.
    expect(readAnswer(randomBytes(32), fresh.ticket, got.subarray(0, ANSWER_BYTES))).toBe(
      undefined,
    );
    // Garbage, or a hello cut short then closed, gets nothing.
    expect(await exchange(port, Buffer.from('GET / HTTP/1.1\r\n\r\n'.repeat(4)))).toHaveLength(0);
    expect(
      await exchange(port, Buffer.concat([helloOf(key, randomBytes(16)), Buffer.from('x')])),
    ).toHaveLength(0);
  });

  it('a malformed key is not offered a stream: the records come over TLS', async () => {
    const a = await ask('not-a-key');
    expect(a.status).toBe(200);
    expect(a.offer).toBeUndefined();
    expect(a.length).toBeGreaterThan(SIZE / 2);
  });

  it('a gateway whose record-stream port is taken does not start, and says which setting', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const taken = (holder.address() as AddressInfo).port;
    try {
      await expect(
        t.startGateway({ port: await freePort(), recordStreams: `127.0.0.1:${taken}` }),
      ).rejects.toMatchObject({
        code: 'usage',
        message: new RegExp(`record streams on 127.0.0.1:${taken}`),
        remedy: /gateway\.recordStreams/,
      });
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  it('refuses malformed offers and keys, and proofs are bound to their side', () => {
    for (const bad of ['', '0 00', '70000 ' + '0'.repeat(32), '443 ' + 'g'.repeat(32), '443']) {
      expect(parseOffer(bad), bad).toBeUndefined();
    }
    expect(parseOffer(`443 ${'ab'.repeat(16)}`)).toMatchObject({ port: 443 });
    for (const bad of [undefined, '', 'ab', 'z'.repeat(64), ['a'.repeat(64)]]) {
      expect(parseKey(bad)).toBeUndefined();
    }
    const key = randomBytes(32);
    const ticket = randomBytes(16);
    expect(bulkProof(key, 'reader', ticket).equals(bulkProof(key, 'gateway', ticket))).toBe(false);
  });
});
