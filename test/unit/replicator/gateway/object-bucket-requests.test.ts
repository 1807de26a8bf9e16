/**
 * What the object store's requests carry: no payload hash and no CRC32 on segment and point bodies
 * where TLS or loopback already covers them, the hash kept over plain HTTP to another host, and
 * DeleteObjects still with the checksum S3 requires. Checked on the wire against a local server.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectBucket, signsPayload } from '../../../../replicator/gateway/object-bucket.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bytes: number;
}

describe('ObjectBucket requests', () => {
  let server: Server;
  let endpoint: string;
  const seen: Seen[] = [];
  const saved = { ...process.env };

  beforeAll(async () => {
    // Generated for the run; the local server checks no signature.
    process.env.AWS_ACCESS_KEY_ID = `TEST${Math.random().toString(36).slice(2, 10).toUpperCase()}`;
    process.env.AWS_SECRET_ACCESS_KEY = Math.random().toString(36).slice(2);
    server = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes });
        res.setHeader('ETag', '"e"');
        if (req.method === 'POST') {
          res.setHeader('Content-Type', 'application/xml');
          res.end('<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>');
        } else res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    process.env.AWS_ACCESS_KEY_ID = saved.AWS_ACCESS_KEY_ID;
    process.env.AWS_SECRET_ACCESS_KEY = saved.AWS_SECRET_ACCESS_KEY;
    if (saved.AWS_ACCESS_KEY_ID === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    if (saved.AWS_SECRET_ACCESS_KEY === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    await new Promise((r) => server.close(r));
  });

  it('sends PUT bodies to a loopback endpoint without payload hash or CRC32', async () => {
    const bucket = new ObjectBucket({ bucket: 'b', prefix: 'p', endpoint });
    try {
      seen.length = 0;
      await bucket.put('apps/a/segments/1/0', Buffer.alloc(4096, 7));
      await bucket.putIf('apps/a/catalog.json', Buffer.from('{}'), undefined);
      const puts = seen.filter((s) => s.method === 'PUT');
      expect(puts.map((s) => s.url.split('?')[0])).toEqual([
        '/b/p/apps/a/segments/1/0',
        '/b/p/apps/a/catalog.json',
      ]);
      expect(puts[0]?.bytes).toBe(4096);
      for (const put of puts) {
        expect(put.headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
        expect(Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum-'))).toEqual([]);
        // The header is part of what the signature covers.
        expect(put.headers.authorization).toContain('x-amz-content-sha256');
      }
    } finally {
      bucket.close();
    }
  });

  it('keeps the checksum S3 requires on DeleteObjects', async () => {
    const bucket = new ObjectBucket({ bucket: 'b', prefix: '', endpoint });
    try {
      seen.length = 0;
      await bucket.delete(['x', 'y']);
      const post = seen.find((s) => s.method === 'POST');
      expect(post?.url).toContain('delete');
      expect(post?.headers['x-amz-checksum-crc32']).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(post?.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      bucket.close();
    }
  });
});

describe('signsPayload', () => {
  it('leaves the payload unsigned only on loopback and on AWS over HTTPS', () => {
    expect(signsPayload(undefined)).toBe(false); // AWS's own endpoints, HTTPS
    expect(signsPayload('https://s3.eu-west-1.amazonaws.com')).toBe(false);
    expect(signsPayload('http://127.0.0.1:7480')).toBe(false);
    expect(signsPayload('http://127.8.0.1:7480')).toBe(false);
    expect(signsPayload('http://localhost:7480')).toBe(false);
    expect(signsPayload('http://[::1]:7480')).toBe(false);
    // Plain HTTP to another host: the hash is what refuses an altered body.
    expect(signsPayload('http://10.0.0.5:7480')).toBe(true);
    expect(signsPayload('http://ceph.internal')).toBe(true);
    expect(signsPayload('http://s3.amazonaws.com')).toBe(true);
    // Other HTTPS services may demand the hash (OSS's S3 API).
    expect(signsPayload('https://oss-cn-hangzhou.aliyuncs.com')).toBe(true);
    expect(signsPayload('https://s3.amazonaws.com.example.org')).toBe(true);
    expect(signsPayload('https://127.0.0.1:7480')).toBe(false);
  });

  it('signs when the endpoint is not a URL', () => {
    expect(signsPayload('not a url')).toBe(true);
    expect(signsPayload('127.0.0.1:7480')).toBe(true);
  });
});
