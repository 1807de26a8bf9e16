/** The router every Lifeboat HTTP server uses (gateway, `dr serve`): find-my-way routes and one way to answer JSON and errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import FindMyWay from 'find-my-way';
import { DrError, isDrError } from './errors.js';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path parameters, %-decoded: check each (core/names) before it is used. */
  params: Record<string, string>;
  /** The request URL (for its query). */
  url: URL;
}

export type RouteHandler = (ctx: RouteContext) => unknown;

export interface Router {
  on(method: string | string[], path: string, handler: RouteHandler): void;
  /**
   * Runs the handler of the route the request matches and resolves true, or resolves false when
   * none matches (nothing was answered). A path with a malformed %-escape is refused with a
   * `bad_request` DrError; what a handler throws is thrown on.
   */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

const malformed = (path: string) =>
  new DrError(`path ${JSON.stringify(path.slice(0, 120))} has a malformed %-escape`, {
    code: 'bad_request',
    subject: path.slice(0, 120),
    remedy: 'encode names with encodeURIComponent',
  });

export function createRouter(): Router {
  const fmw = FindMyWay({
    ignoreTrailingSlash: true,
    ignoreDuplicateSlashes: true,
    // Long names reach their handler, whose name check answers 400 (not a silent 404).
    maxParamLength: 2000,
    onBadUrl: (path) => {
      throw malformed(path);
    },
  });
  return {
    on(method, path, handler) {
      // The handler travels as the route's store: find() hands it back with the params.
      fmw.on(method as FindMyWay.HTTPMethod, path, () => undefined, handler);
    },
    async handle(req, res) {
      const found = fmw.find((req.method ?? 'GET') as FindMyWay.HTTPMethod, req.url ?? '/');
      if (!found) return false;
      const handler = found.store as RouteHandler | null;
      if (!handler) {
        found.handler(req, res, found.params, found.store, found.searchParams); // a bad URL: throws
        return false;
      }
      const params = Object.fromEntries(Object.entries(found.params).map(([k, v]) => [k, v ?? '']));
      await handler({ req, res, params, url: new URL(req.url ?? '/', 'http://localhost') });
      return true;
    },
  };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The one error body: `{"error":{"code","message","subject","remedy"}}`; anything not a DrError says only where to look. */
export function errorBody(
  err: unknown,
  internal = 'internal error; see the log',
): { error: { code: string; message: string; subject?: string; remedy?: string } } {
  if (!isDrError(err)) return { error: { code: 'internal', message: internal } };
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.subject !== undefined ? { subject: err.subject } : {}),
      ...(err.remedy !== undefined ? { remedy: err.remedy } : {}),
    },
  };
}

/** Answers an error with its status and the one error body (or cuts the answer off once begun). */
export function sendError(
  res: ServerResponse,
  status: number,
  err: unknown,
  internal?: string,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, errorBody(err, internal));
}
