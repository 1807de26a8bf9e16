/** `dr serve`'s plain-HTTP server: the shared router's routes, then the older route chain, on one address. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { DrError, errorMessage, systemCode } from '../core/errors.js';
import { tryHostPort } from '../core/host-port.js';
import type { HttpRoute } from '../core/http-route.js';
import { createRouter, type Router, sendError, sendJson } from '../core/http-router.js';
import { type Logger, silentLog } from '../core/log.js';

/**
 * One handler of `dr serve`'s HTTP server: answers the request and returns true, or returns false
 * to let the next route try. Routes are tried in order; nothing matched is a 404.
 */
export type Route = HttpRoute;

export interface HttpServerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  routes: Route[];
  /** Routes by method and path (the router the gateway uses too), tried before `routes`. */
  router?: Router;
  log?: Logger;
  /** The option the address came from, named in errors: `--listen` unless said otherwise. */
  option?: string;
}

export interface HttpServer {
  server: Server;
  /** The address actually bound, HOST:PORT. */
  address: string;
  /** The base URL, e.g. http://127.0.0.1:8787. */
  url: string;
  close(): Promise<void>;
}

/** Splits HOST:PORT (IPv6 in brackets); a usage error names the value when it is not one. */
export function parseListen(listen: string, option = '--listen'): { host: string; port: number } {
  const hp = listen === listen.trim() ? tryHostPort(listen) : undefined;
  if (!hp) {
    throw new DrError(`${option} ${JSON.stringify(listen)} is not HOST:PORT`, {
      code: 'usage',
      subject: option,
      remedy: 'give it like 127.0.0.1:8787 (port 0 picks a free one)',
    });
  }
  return hp;
}

/** `/healthz`: 200 while the process serves. */
export const healthRoute: Route = (req, res) => {
  if (new URL(req.url ?? '/', 'http://x').pathname !== '/healthz') return false;
  sendJson(res, 200, { ok: true });
  return true;
};

/** An HTTP server on one address that hands each request to the first route that takes it. */
export async function createHttpServer({
  listen,
  routes,
  router = createRouter(),
  log = silentLog,
  option = '--listen',
}: HttpServerOptions): Promise<HttpServer> {
  const { host, port } = parseListen(listen, option);
  const server = createServer((req, res) => {
    void dispatch(router, routes, req, res, log);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: unknown) => {
      const code = systemCode(err);
      reject(
        new DrError(`cannot listen on ${listen}: ${errorMessage(err)}`, {
          code: 'usage',
          subject: option,
          remedy:
            code === 'EADDRINUSE'
              ? `stop what uses that port, or choose another with ${option} HOST:PORT`
              : `choose an address of this machine with ${option} HOST:PORT`,
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    address: `${hostPart}:${boundPort}`,
    url: `http://${hostPart}:${boundPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function dispatch(
  router: Router,
  routes: Route[],
  req: IncomingMessage,
  res: ServerResponse,
  log: Logger,
): Promise<void> {
  try {
    if (await router.handle(req, res)) return;
    for (const route of routes) {
      if (await route(req, res)) return;
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    sendError(
      res,
      404,
      new DrError(`nothing is served at ${req.method} ${path.slice(0, 200)}`, {
        code: 'bad_request',
        subject: path.slice(0, 200),
      }),
    );
  } catch (err) {
    if (err instanceof DrError && err.code === 'bad_request') {
      sendError(res, 400, err); // a malformed %-escape in the path
      return;
    }
    log.error({ err: errorMessage(err), url: req.url }, 'request failed');
    sendError(res, 500, err, 'internal error; see the dr serve log');
  }
}
