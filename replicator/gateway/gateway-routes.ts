/** The gateway's routes under /v1: each checks the names it is given (core/names) and hands over to its part. */
import { DrError } from '../../core/errors.js';
import { createRouter, type Router, sendJson } from '../../core/http-router.js';
import { BULK_HEADER, parseKey } from '../transport/bulk-stream.js';
import type { AppStatus } from '../transport/protocol.js';
import {
  heartbeatRequestSchema,
  sessionRequestSchema,
  throttleRequestSchema,
} from '../transport/protocol.js';
import type { AgentLeases } from './agent-leases.js';
import { volumeInfo } from './agent-leases.js';
import type { BatchIngest } from './batch-ingest.js';
import type { BulkRecords } from './bulk-records.js';
import type { GatewayStore, ReadableReplica } from './gateway-store.js';
import { heldApp, heldVolume } from './held-app.js';
import type { Placement } from './leased-store.js';
import type { PointCommit } from './point-commit.js';
import type { ProtectionBook } from './protection-book.js';
import { httpRecordOut, type RecordOut, sendMacs, streamRecords } from './record-stream.js';
import { badRequest, named, parseRequest, readBody, readJson } from './request-body.js';
import type { ThrottleStore } from './throttle-store.js';

export interface GatewayParts {
  store: GatewayStore;
  protection: ProtectionBook;
  /** Bandwidth caps set from chat, handed to each app's agent with every heartbeat answer. */
  throttles: ThrottleStore;
  leases: AgentLeases;
  ingest: BatchIngest;
  commit: PointCommit;
  /** Apps the gateway knows, sorted. */
  known(): string[];
  status(app: string): AppStatus;
  maxBatchBytes: number;
  now: () => number;
  /** With several gateways on one bucket: writes go to the app's holder, reads come from anywhere. */
  placement?: Placement | undefined;
  /** Sealed record streams over plain TCP (absent: records go over TLS only). */
  bulk?: BulkRecords | undefined;
  onBatch?:
    | ((batch: { app: string; bytes: number; ms: number; duplicate: boolean }) => void)
    | undefined;
}

const upgrade = 'upgrade the agent to match the gateway';

export function gatewayRouter(p: GatewayParts): Router {
  const router = createRouter();
  const appOf = (params: Record<string, string>) => named('app', params.app, 'path');
  /**
   * The app named in the path, refused with a redirect when another gateway serves it. Nobody
   * serving it (its gateway died): the agent's session is lost, and opening one here takes it.
   */
  const writable = async (params: Record<string, string>, opening = false) => {
    const app = appOf(params);
    if (p.placement && !(await p.placement.forWrite(app)) && !opening) {
      throw new DrError(`this gateway does not serve app ${app} (yet)`, {
        code: 'session_lost',
        subject: app,
        remedy: 'the agent opens a new session by itself, and this gateway takes the app over',
      });
    }
    return app;
  };
  const readable = (app: string): Promise<ReadableReplica> | ReadableReplica =>
    p.placement ? p.placement.reader(app) : heldApp(p.store, app);

  router.on('GET', '/v1/status', ({ res, url }) => {
    const only = url.searchParams.get('app');
    // Asking about an app adds nothing: an unknown name answers an empty list.
    const names = only ? p.known().filter((a) => a === named('app', only, 'app=')) : p.known();
    sendJson(res, 200, names.map(p.status));
  });

  router.on('POST', '/v1/apps/:app/session', async ({ req, res, params }) => {
    const app = await writable(params, true);
    const json = await readJson(req);
    await p.protection.refuseUnlessProtected(app);
    const body = parseRequest(sessionRequestSchema, json, 'session request', upgrade);
    sendJson(res, 200, await p.leases.open(app, body));
  });
  router.on('DELETE', '/v1/apps/:app/session', async ({ res, params, url }) => {
    p.leases.release(await writable(params, true), url.searchParams.get('id'));
    sendJson(res, 200, { released: true });
  });

  router.on('POST', '/v1/apps/:app/batches', async ({ req, res, params }) => {
    const app = await writable(params);
    const t0 = p.now();
    const body = await readBody(req, p.maxBatchBytes);
    const sessionId = req.headers['x-lifeboat-session'];
    await p.protection.refuseUnlessProtected(app);
    const ack = await p.ingest(app, typeof sessionId === 'string' ? sessionId : undefined, body);
    p.onBatch?.({
      app,
      bytes: body.reduce((n, b) => n + b.length, 0),
      ms: p.now() - t0,
      duplicate: ack.duplicate,
    });
    sendJson(res, 200, ack);
  });

  router.on('POST', '/v1/apps/:app/points', async ({ req, res, params }) => {
    const app = await writable(params);
    const body = await readJson(req);
    await p.protection.refuseUnlessProtected(app);
    sendJson(res, 200, await p.commit(app, body));
  });

  // Protection lives with the gateway serving the app (its agent is the one to refuse).
  router.on('POST', '/v1/apps/:app/protection', async ({ req, res, params }) => {
    const app = await writable(params, true);
    sendJson(res, 200, await p.protection.set(app, await readJson(req)));
  });
  router.on('GET', '/v1/apps/:app/protection', async ({ res, params }) => {
    sendJson(res, 200, await p.protection.of(await writable(params, true)));
  });

  router.on('POST', '/v1/apps/:app/heartbeat', async ({ req, res, params }) => {
    const app = await writable(params);
    // A paused agent keeps saying it is alive and waiting; a failed-over one is refused.
    await p.protection.refuseUnlessProtected(app, { whilePaused: true });
    p.leases.heartbeat(
      app,
      parseRequest(heartbeatRequestSchema, await readJson(req), 'heartbeat', upgrade),
    );
    sendJson(res, 200, { serverTime: p.now(), throttle: await p.throttles.get(app) });
  });

  router.on('POST', '/v1/apps/:app/throttle', async ({ req, res, params }) => {
    const app = await writable(params, true);
    heldApp(p.store, app); // a cap for an app the gateway holds no replica of is refused
    const body = parseRequest(
      throttleRequestSchema,
      await readJson(req),
      'throttle request',
      upgrade,
    );
    sendJson(res, 200, await p.throttles.set(app, body));
  });

  router.on('GET', '/v1/apps/:app/points', async ({ res, params }) => {
    sendJson(res, 200, (await readable(appOf(params))).points());
  });
  router.on('GET', '/v1/apps/:app/points/:point', async ({ res, params }) => {
    const app = appOf(params);
    const a = await readable(app);
    const point = a.point(named('point', params.point, 'path'));
    sendJson(res, 200, { ...point, app, volumeInfo: a.volumes().map(volumeInfo) });
  });
  router.on('GET', '/v1/apps/:app/points/:point/volumes/:volume/macs', async ({ res, params }) => {
    const a = await readable(appOf(params));
    const vol = named('volume', params.volume, 'path');
    heldVolume(a, vol);
    const entries =
      params.point === 'head'
        ? await a.headEntries(vol)
        : await a.pointEntries(a.point(named('point', params.point, 'path')).id, vol);
    sendMacs(res, entries);
  });
  router.on(
    'GET',
    '/v1/apps/:app/points/:point/volumes/:volume/records',
    async ({ req, res, params, url }) => {
      const app = appOf(params);
      const vol = named('volume', params.volume, 'path');
      // ?since=SEQ: only records that arrived after batch SEQ (what changed since a point
      // whose seqTo is SEQ), for a worker that keeps that point's image.
      const sinceParam = url.searchParams.get('since');
      const since = sinceParam === null ? -1 : Number(sinceParam);
      if (!Number.isSafeInteger(since) || since < -1) {
        throw badRequest(
          `since=${sinceParam} is not a batch sequence number`,
          "send since=SEQ, a point's seqTo",
        );
      }
      // ?from=B&to=B: only blocks B in [from, to), for a recovery that fetches a block on demand.
      const from = blockParam(url.searchParams.get('from'), 'from', 0);
      const to = blockParam(url.searchParams.get('to'), 'to', 2 ** 32);
      const serve = async (out: RecordOut) => {
        const a = await readable(app);
        heldVolume(a, vol);
        const id = a.point(named('point', params.point, 'path')).id;
        await streamRecords(out, a, { app, vol, id, since, from, to });
      };
      // A reader that offers a key gets a ticket for a sealed stream (transport/bulk-stream.ts);
      // the point and volume are checked now too, so a refusal still comes over TLS.
      const key = p.bulk && parseKey(req.headers[BULK_HEADER]);
      if (p.bulk && key) {
        const a = await readable(app);
        heldVolume(a, vol);
        a.point(named('point', params.point, 'path'));
        const ticket = p.bulk.offer(key, serve);
        res.writeHead(200, { [BULK_HEADER]: `${p.bulk.port} ${ticket}`, 'content-length': 0 });
        res.end();
        return;
      }
      await serve(httpRecordOut(res));
    },
  );
  return router;
}

/** A block number in a query (`from`/`to`), or the default when absent. */
function blockParam(value: string | null, name: string, absent: number): number {
  if (value === null) return absent;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 32) {
    throw badRequest(
      `${name}=${value} is not a block number`,
      `send ${name}=N with 0 <= N <= 2^32`,
    );
  }
  return n;
}
