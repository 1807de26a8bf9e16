/**
 * A point's records for a restore, over a TLS connection of their own whose plaintext lands straight
 * in the reader's buffer (Node's `onread`): no buffer per chunk, no copy through the HTTP client.
 */
import type { OnReadOpts } from 'node:net';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { DrError } from '../../core/errors.js';
import { type HostPort, tryHostPort } from '../../core/host-port.js';
import type { GatewayClient } from './gateway-client.js';

/** Where the body goes: `space()` is the free room for the next bytes, `landed(n)` says n arrived. */
export interface RecordSink {
  space(): Buffer;
  /** False pauses the connection until the fetch's `resume()`. */
  landed(n: number): boolean;
}

export interface RecordFetch {
  /** Resolves once the whole body (its content-length) has landed. */
  done: Promise<void>;
  /** Reads on after `landed` returned false. */
  resume(): void;
  /** Ends the connection; `done` rejects with `reason`. */
  abort(reason: unknown): void;
}

const HEAD_ROOM = 64 * 1024;

/**
 * GETs `/v1/apps/APP/points/P/volumes/V/records` for blocks [from, to) (and batches after `since`)
 * into `sink`. A refusal (non-2xx) rejects with the gateway's error; a connection that fails,
 * times out or ends before the announced length rejects with `gateway_unreachable`.
 */
export function fetchRecordsInto(
  client: GatewayClient,
  q: {
    app: string;
    point: number;
    volume: string;
    since?: number | undefined;
    range: { from: number; to: number };
  },
  sink: RecordSink,
): RecordFetch {
  const query = new URLSearchParams({ from: String(q.range.from), to: String(q.range.to) });
  if (q.since !== undefined) query.set('since', String(q.since));
  const path = `/v1/apps/${enc(q.app)}/points/${enc(String(q.point))}/volumes/${enc(q.volume)}/records?${query}`;
  // Reads of committed points are served by any gateway: the one that last answered for the app.
  const address = client.addressFor(q.app);
  const { host, port } = tryHostPort(address, 1) as HostPort;
  let head: Buffer = Buffer.allocUnsafe(HEAD_ROOM);
  let headUsed = 0;
  /** Body bytes still to come; undefined until the response head is read. */
  let remaining: number | undefined;
  let status = 0;
  let errorBody: Buffer | undefined;
  let socket: TLSSocket | undefined;
  let settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const finish = (err?: unknown) => {
    const s = settle;
    settle = undefined;
    socket?.destroy();
    if (!s) return;
    if (err === undefined) s.resolve();
    else s.reject(err);
  };
  const cut = (why: string, cause?: unknown) =>
    new DrError(`the gateway's record stream for ${q.app}/${q.volume} was cut off (${why})`, {
      code: 'gateway_unreachable',
      subject: `${q.app}/${q.volume}`,
      remedy:
        'run the command again; if it repeats, the gateway log names the record it could not read',
      cause,
    });

  /** The body's first bytes came with the head: they go to the sink like the rest. */
  const bodyBytes = (from: Buffer): boolean => {
    let ok = true;
    let o = 0;
    while (o < from.length) {
      const room = sink.space();
      const n = from.copy(room, 0, o);
      o += n;
      ok = sink.landed(n);
    }
    return ok;
  };
  const onHead = (): boolean => {
    const end = head.subarray(0, headUsed).indexOf('\r\n\r\n');
    if (end < 0) {
      if (headUsed === head.length) finish(cut('the answer has no end of its head'));
      return true;
    }
    const lines = head.subarray(0, end).toString('latin1').split('\r\n');
    status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
    const length = lines
      .map((l) => /^content-length:\s*(\d+)\s*$/i.exec(l)?.[1])
      .find((v) => v !== undefined);
    if (status === 0 || length === undefined) {
      finish(cut(`an answer without ${status === 0 ? 'a status' : 'a length'}`));
      return false;
    }
    remaining = Number(length);
    const rest = head.subarray(end + 4, headUsed);
    if (status >= 300) {
      errorBody = Buffer.from(rest);
      remaining -= rest.length;
      if (remaining <= 0) finish(client.httpError(status, errorBody, address));
      return true;
    }
    remaining -= rest.length;
    const ok = bodyBytes(rest);
    if (remaining <= 0) finish();
    return ok;
  };

  if (client.isClosed) {
    finish(
      new DrError(`the connection to the gateway at ${client.address} was closed`, {
        code: 'gateway_unreachable',
        subject: client.address,
      }),
    );
  } else {
    // `onread` is Node's (since 14.17) for TLS sockets too; @types/node declares it for net only.
    const options: ConnectionOptions & { onread: OnReadOpts } = {
      ...client.options.tls,
      host,
      port,
      ...(isIp(host) ? {} : { servername: host }),
      onread: {
        buffer: () => {
          if (remaining === undefined || status >= 300) {
            if (headUsed === head.length) {
              // An error body larger than the room: keep it whole for the message.
              const bigger = Buffer.allocUnsafe(head.length * 2);
              head.copy(bigger);
              head = bigger;
            }
            return head.subarray(headUsed);
          }
          return sink.space();
        },
        callback: (n: number, buf: Uint8Array) => {
          if (!settle) return false;
          if (remaining === undefined) {
            headUsed += n;
            return onHead();
          }
          remaining -= n;
          if (remaining < 0) {
            finish(cut('more bytes than the announced length'));
            return false;
          }
          if (errorBody) {
            errorBody = Buffer.concat([errorBody, Buffer.from(buf.subarray(0, n))]);
            if (remaining === 0) finish(client.httpError(status, errorBody, address));
            return true;
          }
          const ok = sink.landed(n);
          if (remaining === 0) finish();
          return ok;
        },
      },
    };
    socket = connect(options);
    socket.setTimeout(client.timeoutMs, () =>
      finish(
        client.netError(
          Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' }),
          address,
        ),
      ),
    );
    socket.once('secureConnect', () => {
      socket?.write(
        `GET ${path} HTTP/1.1\r\nhost: ${address}\r\nconnection: close\r\naccept: application/octet-stream\r\n\r\n`,
      );
    });
    socket.on('error', (err) =>
      finish(remaining === undefined ? client.netError(err, address) : cut(err.message, err)),
    );
    socket.on('close', () =>
      finish(
        new DrError(`the gateway's record stream for ${q.app}/${q.volume} ended early`, {
          code: 'gateway_unreachable',
          subject: address,
          remedy: 'run the command again; check the gateway log if it repeats',
        }),
      ),
    );
  }
  return {
    done,
    resume: () => socket?.resume(),
    abort: (reason) => finish(reason),
  };
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
