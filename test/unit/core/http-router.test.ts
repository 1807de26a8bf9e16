/** The shared router: routes by method and path, decoded params, 400 for malformed escapes, one error body. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../core/errors.js';
import { createRouter, errorBody, sendError, sendJson } from '../../../core/http-router.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server answering through one router: unmatched 404, thrown DrError 400, else 500. */
async function serve(): Promise<string> {
  const router = createRouter();
  router.on('GET', '/v1/apps/:app/points/:point', ({ res, params, url }) =>
    sendJson(res, 200, { params, q: url.searchParams.get('since') }),
  );
  router.on(['POST', 'DELETE'], '/v1/apps/:app/session', async ({ req, res }) => {
    await Promise.resolve(); // an async handler is awaited
    sendJson(res, 201, { method: req.method });
  });
  router.on('GET', '/boom', () => {
    throw new Error('secret detail');
  });
  const s = createServer((req, res) => {
    router.handle(req, res).then(
      (matched) => {
        if (!matched) sendError(res, 404, new DrError('no route', { code: 'bad_request' }));
      },
      (err: unknown) => sendError(res, err instanceof DrError ? 400 : 500, err),
    );
  });
  server = s;
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('createRouter', () => {
  it('routes by method and path and hands over %-decoded params and the query', async () => {
    const url = await serve();
    const r = await fetch(`${url}/v1/apps/..%2Fweb/points/7?since=3`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ params: { app: '../web', point: '7' }, q: '3' });
    expect((await fetch(`${url}/v1/apps/web/session`, { method: 'DELETE' })).status).toBe(201);
    expect((await fetch(`${url}/v1/apps/web/session`, { method: 'POST' })).status).toBe(201);
    expect((await fetch(`${url}/v1/apps/web/session`)).status).toBe(404);
    expect((await fetch(`${url}//v1/apps/web/points/1/`)).status).toBe(200);
    expect((await fetch(`${url}/v1/apps/web`)).status).toBe(404);
  });

  it('refuses a malformed %-escape as bad_request, naming the remedy', async () => {
    const url = await serve();
    for (const path of ['/v1/apps/web/points/%zz', '/v1/apps/%E0%A4%A/points/1']) {
      const r = await fetch(`${url}${path}`);
      expect(r.status).toBe(400);
      const body = (await r.json()) as { error: { code: string; remedy: string } };
      expect(body.error.code).toBe('bad_request');
      expect(body.error.remedy).toMatch(/encodeURIComponent/);
    }
  });

  it('says nothing of an internal error but where to look', async () => {
    const url = await serve();
    const r = await fetch(`${url}/boom`);
    expect(r.status).toBe(500);
    const text = await r.text();
    expect(text).not.toContain('secret detail');
    expect(JSON.parse(text)).toEqual(errorBody(new Error('x')));
  });
});

describe('errorBody', () => {
  it('carries code, message, subject and remedy of a DrError', () => {
    const e = new DrError('app x is paused', {
      code: 'app_paused',
      subject: 'x',
      remedy: 'resume',
    });
    expect(errorBody(e)).toEqual({
      error: { code: 'app_paused', message: e.message, subject: 'x', remedy: 'resume' },
    });
    expect(errorBody('str', 'see the gateway log')).toEqual({
      error: { code: 'internal', message: 'see the gateway log' },
    });
  });
});
