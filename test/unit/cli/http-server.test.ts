import { afterEach, describe, expect, it } from 'vitest';
import {
  createHttpServer,
  type HttpServer,
  healthRoute,
  parseListen,
} from '../../../cli/http-server.js';
import { createRouter, sendJson } from '../../../core/http-router.js';

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('createHttpServer', () => {
  it('serves /healthz and extra routes on one address, 404 for the rest', async () => {
    const s = await createHttpServer({
      listen: '127.0.0.1:0',
      routes: [
        healthRoute,
        (req, res) => {
          if (req.url !== '/hello') return false;
          res.end('hi');
          return true;
        },
        async () => false,
      ],
    });
    servers.push(s);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${s.url}/hello`)).text()).toBe('hi');
    expect((await fetch(`${s.url}/nope`)).status).toBe(404);
  });

  it('serves the shared router first, and answers 404 and a malformed escape with the error body', async () => {
    const router = createRouter();
    router.on('GET', '/items/:id', ({ res, params }) => sendJson(res, 200, { id: params.id }));
    const s = await createHttpServer({ listen: '127.0.0.1:0', routes: [healthRoute], router });
    servers.push(s);
    expect(await (await fetch(`${s.url}/items/a%20b`)).json()).toEqual({ id: 'a b' });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const missing = await fetch(`${s.url}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    expect((await fetch(`${s.url}/items/%zz`)).status).toBe(400);
  });

  it('answers 500 when a route throws, and keeps serving', async () => {
    const s = await createHttpServer({
      listen: '127.0.0.1:0',
      routes: [
        () => {
          throw new Error('boom');
        },
      ],
    });
    servers.push(s);
    expect((await fetch(`${s.url}/x`)).status).toBe(500);
    expect((await fetch(`${s.url}/y`)).status).toBe(500);
  });

  it('refuses a bad --listen and a port in use, naming the remedy', async () => {
    expect(() => parseListen('localhost')).toThrow(/--listen "localhost" is not HOST:PORT/);
    expect(() => parseListen('1.2.3.4:99999')).toThrow(/not HOST:PORT/);
    expect(parseListen('[::1]:80')).toEqual({ host: '::1', port: 80 });
    const s = await createHttpServer({ listen: '127.0.0.1:0', routes: [] });
    servers.push(s);
    await expect(createHttpServer({ listen: s.address, routes: [] })).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+.*choose another with --listen/,
    );
  });
});
