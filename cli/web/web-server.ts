import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { splitHostPort } from '../../replicator/gateway/gateway-server.js';
import { type AccessRule, isLoopbackHost, STATUS_TOKEN_VARIABLE } from './access-rule.js';
import { type Route, sendText } from './route.js';

export interface WebServerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  routes: Route[];
  access: AccessRule;
  /** What the address is for, in errors: `--metrics`, `gateway.metrics in dr.yaml`. */
  what: string;
  log?: Logger;
}

export interface WebServer {
  server: Server;
  /** HOST:PORT actually bound. */
  address: string;
  close(): Promise<void>;
}

/**
 * A plain HTTP listener for the metrics of the gateway and the agent. It refuses to listen beyond
 * loopback without a token, since nothing there would keep strangers out.
 */
export async function startWebServer({
  listen,
  routes,
  access,
  what,
  log = silentLog,
}: WebServerOptions): Promise<WebServer> {
  const [host, port] = splitHostPort(listen);
  if (!isLoopbackHost(host) && !access.token) {
    throw new DrError(`${what} ${listen} is reachable beyond this machine and no token is set`, {
      code: 'usage',
      subject: listen,
      remedy: `listen on 127.0.0.1, or set ${STATUS_TOKEN_VARIABLE} so remote readers must present it`,
    });
  }
  const server = createServer((req, res) => {
    void (async () => {
      for (const route of routes) if (await route(req, res)) return;
      sendText(res, 404, `no such path ${new URL(req.url ?? '/', 'http://x').pathname}`);
    })().catch((err: unknown) => {
      log.error({ err: errorMessage(err), url: req.url }, 'web request failed');
      if (!res.headersSent) sendText(res, 500, 'internal error; see the server log');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new DrError(
          `cannot listen on ${listen} for ${what} (${systemCode(err) ?? errorMessage(err)})`,
          {
            code: 'usage',
            subject: listen,
            remedy: 'choose another port, or stop what holds that one',
            cause: err,
          },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  return {
    server,
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
