import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { createHttpServer, type HttpServer, parseListen } from '../http-server.js';
import { type AccessRule, isLoopbackHost, STATUS_TOKEN_VARIABLE } from './access-rule.js';
import type { Route } from './route.js';

export interface WebServerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  routes: Route[];
  access: AccessRule;
  /** Where the address came from, named in errors: `--metrics`, `gateway.metrics in dr.yaml`. */
  what: string;
  log?: Logger;
}

/**
 * The plain HTTP listener of the gateway's and the agent's metrics. It refuses to listen beyond
 * loopback without a token, since nothing there would keep strangers out.
 */
export async function startWebServer({
  listen,
  routes,
  access,
  what,
  log,
}: WebServerOptions): Promise<HttpServer> {
  const { host } = parseListen(listen, what);
  if (!isLoopbackHost(host) && !access.token) {
    throw new DrError(`${what} ${listen} is reachable beyond this machine and no token is set`, {
      code: 'usage',
      subject: listen,
      remedy: `listen on 127.0.0.1, or set ${STATUS_TOKEN_VARIABLE} so remote readers must present it`,
    });
  }
  return createHttpServer({ listen, routes, option: what, ...(log ? { log } : {}) });
}
