/** The DR-site gateway: an mTLS HTTPS server composed from its parts (protection, leases, ingest, commit, status, streaming, routes). */
import { statfs } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { DrError, errorMessage, isDrError, systemCode } from '../../core/errors.js';
import { sendError } from '../../core/http-router.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { AppStatus } from '../transport/protocol.js';
import { createAgentLeases } from './agent-leases.js';
import { appStatus } from './app-status.js';
import { createBatchIngest } from './batch-ingest.js';
import { openBulkRecords } from './bulk-records.js';
import { gatewayRouter } from './gateway-routes.js';
import type { GatewayStore } from './gateway-store.js';
import { HttpError, httpStatusOf } from './http-status.js';
import type { Placement } from './leased-store.js';
import { createPointCommit } from './point-commit.js';
import { createProtectionBook } from './protection-book.js';
import type { RetentionRules } from './retention.js';
import { ThrottleStore } from './throttle-store.js';

export interface GatewayOptions {
  store: GatewayStore;
  /** HOST:PORT to listen on; port 0 picks a free one. */
  listen: string;
  tls: TlsOptions;
  retention: RetentionRules;
  /** New batches are refused (507) while the store's disk has less free space than this. */
  minFreeSpace?: number;
  /** An agent that has not been heard of for this long loses its lease on the app. */
  leaseMs?: number;
  /** Largest batch body accepted. */
  maxBatchBytes?: number;
  log?: Logger;
  now?: () => number;
  /** Told of each batch made durable (or recognised as a duplicate), for metrics. */
  onBatch?: (batch: BatchReceived) => void;
  /** Several gateways on one bucket (a LeasedStore): writes redirected to each app's holder. */
  placement?: Placement;
  /**
   * HOST:PORT for sealed record streams, a restore's records over plain TCP (bulk-records.ts);
   * default: the listen host, a free port. False: records go over TLS only.
   */
  recordStreams?: string | false;
}

/** A batch the gateway acknowledged: its size on the wire and the time from request to durable ack. */
export interface BatchReceived {
  app: string;
  bytes: number;
  ms: number;
  duplicate: boolean;
}

export interface Gateway {
  server: Server;
  /** HOST:PORT actually bound. */
  address: string;
  /** Replication state of every app the gateway knows (with several gateways: serves). */
  statuses(): AppStatus[];
  close(): Promise<void>;
}

/** The DR-site receiver: takes encrypted batches, makes them durable, commits recovery points. */
export async function createGateway({
  store,
  listen,
  tls,
  retention,
  minFreeSpace = 64 * 1024 * 1024,
  leaseMs = 30_000,
  maxBatchBytes = 64 * 1024 * 1024,
  log = silentLog,
  now = Date.now,
  onBatch,
  placement,
  recordStreams,
}: GatewayOptions): Promise<Gateway> {
  const leases = createAgentLeases({ store, log, now, leaseMs });
  // An app another gateway took over: its agent's session here is over.
  placement?.onLost((app) => leases.drop(app));
  // The store's file system as the status shows it, refreshed in the background every 5 s (read
  // once before the first status, which else went out without it).
  let space = await spaceOf(store.dir);
  let spaceAt = now();
  const storeSpace = () => {
    if (now() - spaceAt > 5000) {
      spaceAt = now();
      void spaceOf(store.dir).then((s) => {
        space = s;
      });
    }
    return space;
  };
  const protection = createProtectionBook({ store, log, now, onFailedOver: leases.drop });
  /** Apps the gateway knows: held in the store, or with an agent session since it started. */
  const known = () => [...new Set([...store.apps(), ...leases.apps()])].sort();
  const status = (app: string): AppStatus => ({
    ...appStatus({
      app,
      points: store.app(app)?.points() ?? [],
      storedBytes: store.app(app)?.stats().segmentBytes ?? 0,
      // Asking about a name must not create state for it: a typo would stay listed forever.
      runtime: leases.peek(app) ?? {
        lease: undefined,
        bytesShipped: 0,
        recent: [],
        volumeRecent: [],
        maintenance: Promise.resolve(),
      },
      volumes: store.app(app)?.volumes() ?? [],
      store: storeSpace(),
      protection: protection.cached(app),
      t: now(),
    }),
    ...(placement ? { served: store.app(app) !== undefined } : {}),
  });
  const [host, port] = splitHostPort(listen);
  const bulkAt: [string, number] | undefined =
    recordStreams === false
      ? undefined
      : recordStreams === undefined
        ? [host, 0]
        : splitHostPort(recordStreams);
  const bulk = bulkAt && (await openBulkRecords({ host: bulkAt[0], port: bulkAt[1], log, now }));
  const router = gatewayRouter({
    bulk,
    store,
    protection,
    throttles: new ThrottleStore(store.dir, now),
    leases,
    ingest: createBatchIngest({ store, leases, minFreeSpace, now }),
    commit: createPointCommit({ store, leases, retention, log, now }),
    known,
    status,
    maxBatchBytes,
    now,
    onBatch,
    placement,
  });

  const refuse = (req: IncomingMessage, res: ServerResponse, caught: unknown) => {
    // A full disk can fail any write (catalog, point index, protection state), not only
    // segment appends: the agent must hear 507 and wait, not an internal error that stops it.
    const err =
      !isDrError(caught) && isDiskFull(caught)
        ? new DrError(`the gateway store is full: ${errorMessage(caught)}`, {
            code: 'gateway_full',
            subject: store.dir,
            remedy:
              'free space on the gateway disk or shorten the retention; the agent waits and retries',
            cause: caught,
          })
        : caught;
    const status = httpStatusOf(err);
    // A redirect names the gateway that serves the app: the same request goes there.
    if (status === 307 && isDrError(err) && err.subject)
      res.setHeader('location', `https://${err.subject}${req.url ?? '/'}`);
    if (status >= 500 && status !== 507)
      log.error({ err: errorMessage(err), url: req.url }, 'request failed');
    else log.warn({ err: errorMessage(err), url: req.url, status }, 'request refused');
    sendError(res, status, err, 'internal gateway error; see the gateway log');
  };
  const server = createServer(
    { ...tls, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (req, res) => {
      router
        .handle(req, res)
        .then((matched) => {
          if (matched) return;
          const path = (req.url ?? '/').split('?')[0] ?? '/';
          throw new HttpError(
            404,
            new DrError(`no such operation ${req.method} ${path.slice(0, 200)}`, {
              code: 'bad_request',
            }),
          );
        })
        .catch((caught: unknown) => refuse(req, res, caught));
    },
  );
  server.on('tlsClientError', (err) =>
    log.warn({ err: errorMessage(err) }, 'TLS handshake refused'),
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      reject(
        new DrError(
          `gateway cannot listen on ${listen} (${systemCode(err) ?? errorMessage(err)})`,
          {
            code: 'usage',
            subject: listen,
            remedy: 'choose another gateway.listen in dr.yaml, or stop what holds that port',
            cause: err,
          },
        ),
      );
    });
    server.listen(port, host, () => resolve());
  }).catch(async (err: unknown) => {
    await bulk?.close();
    throw err;
  });
  for (const a of store.apps()) await protection.of(a); // status shows failed-over apps from the start
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log.info({ address, store: store.dir }, 'gateway listening');

  return {
    server,
    address,
    // Published to Redis: with several gateways, each speaks only for the apps it serves.
    statuses: () =>
      known()
        .filter((a) => !placement || store.app(a))
        .map(status),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await bulk?.close();
      await leases.maintenance();
      await store.close();
    },
  };
}

export function splitHostPort(hp: string): [string, number] {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(hp);
  if (!m)
    throw new DrError(`${hp} is not HOST:PORT`, {
      code: 'config_invalid',
      subject: hp,
      remedy: 'write it like 127.0.0.1:7443',
    });
  return [m[1] as string, Number(m[2])];
}

/** Whether an error (or one it was caused by) is the disk being full. */
function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = systemCode(e);
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}

/** Free and total bytes of the store's file system; undefined where statfs is unsupported. */
async function spaceOf(
  dir: string,
): Promise<{ freeBytes: number; totalBytes: number } | undefined> {
  try {
    const s = await statfs(dir);
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    // statfs is unsupported on some file systems: the page then shows no store usage.
    return undefined;
  }
}
