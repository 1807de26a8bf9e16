/**
 * A point's records for a restore, over a connection of their own whose bytes land straight in the
 * reader's buffer (Node's `onread`): no buffer per chunk, no copy through the HTTP client. Asked
 * for over mutual TLS; where the gateway offers it, the records then come as a sealed stream over
 * plain TCP (bulk-stream.ts), since they are AES-256-GCM already and TLS would encrypt them again.
 */
import { randomBytes } from 'node:crypto';
import { connect as connectTcp, type OnReadOpts, type Socket } from 'node:net';
import { type ConnectionOptions, connect } from 'node:tls';
import { DrError } from '../../core/errors.js';
import { type HostPort, tryHostPort } from '../../core/host-port.js';
import {
  ANSWER_BYTES,
  BULK_HEADER,
  BULK_KEY_BYTES,
  helloOf,
  parseOffer,
  readAnswer,
} from './bulk-stream.js';
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
/** A sealed stream's port that does not answer within this long: the records come over TLS. */
const BULK_CONNECT_MS = 5_000;
/** Gateways (HOST:PORT) whose sealed-stream port could not be reached: asked over TLS only. */
const tlsOnly = new Set<string>();

/**
 * GETs `/v1/apps/APP/points/P/volumes/V/records` for blocks [from, to) (and batches after `since`)
 * into `sink`. A refusal (non-2xx) rejects with the gateway's error; a connection that fails,
 * times out, ends before the announced length or sends more than it rejects with
 * `gateway_unreachable`.
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
  /** Body bytes still to come; undefined until the answer's head is read. */
  let remaining: number | undefined;
  let status = 0;
  let errorBody: Buffer | undefined;
  /** The connection bytes come from now: the TLS request's, then a sealed stream's. */
  let socket: Socket | undefined;
  /** Set once the gateway gave a ticket: the sealed stream's key and ticket. */
  let sealed: { key: Buffer; ticket: Buffer; port: number } | undefined;
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
  /** The head is read (status, length): `rest` is what came after it. */
  const afterHead = (rest: Buffer): boolean => {
    // Bytes past the announced length are no part of this answer: never handed on as records.
    if (rest.length > (remaining as number)) {
      finish(cut('more bytes than the announced length'));
      return false;
    }
    if (status >= 300) {
      errorBody = Buffer.from(rest);
      (remaining as number) -= rest.length;
      if ((remaining as number) <= 0) finish(client.httpError(status, errorBody, address));
      return true;
    }
    (remaining as number) -= rest.length;
    const ok = bodyBytes(rest);
    if ((remaining as number) <= 0) finish();
    return ok;
  };
  const onHttpHead = (): boolean => {
    const end = head.subarray(0, headUsed).indexOf('\r\n\r\n');
    if (end < 0) {
      if (headUsed === head.length) finish(cut('the answer has no end of its head'));
      return true;
    }
    const lines = head.subarray(0, end).toString('latin1').split('\r\n');
    status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
    const header = (name: string) =>
      lines
        .map((l) => new RegExp(`^${name}:\\s*(.*?)\\s*$`, 'i').exec(l)?.[1])
        .find((v) => v !== undefined);
    const length = header('content-length');
    if (status === 0 || length === undefined || !/^\d+$/.test(length)) {
      finish(cut(`an answer without ${status === 0 ? 'a status' : 'a length'}`));
      return false;
    }
    const offer = status === 200 && key ? header(BULK_HEADER) : undefined;
    if (offer !== undefined) {
      const o = parseOffer(offer);
      if (!o) {
        finish(cut(`a malformed ${BULK_HEADER} answer`));
        return false;
      }
      openSealed({ key: key as Buffer, ...o });
      return false;
    }
    remaining = Number(length);
    return afterHead(head.subarray(end + 4, headUsed));
  };
  const onSealedHead = (): boolean => {
    if (headUsed < ANSWER_BYTES || !sealed) return true;
    const answer = readAnswer(sealed.key, sealed.ticket, head.subarray(0, ANSWER_BYTES));
    if (!answer) {
      finish(cut('the answer on the sealed stream did not prove it came from the gateway'));
      return false;
    }
    status = answer.status;
    remaining = answer.length;
    return afterHead(head.subarray(ANSWER_BYTES, headUsed));
  };

  const onread: OnReadOpts = {
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
        return sealed ? onSealedHead() : onHttpHead();
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
  };
  /** Errors and an early end of `s` end the fetch while `s` is the connection in use. */
  const watch = (s: Socket, onError: (err: Error) => void) => {
    s.setTimeout(client.timeoutMs, () => {
      if (s !== socket) return;
      finish(
        client.netError(
          Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' }),
          address,
        ),
      );
    });
    s.on('error', (err) => {
      if (s === socket) onError(err);
    });
    s.on('close', () => {
      if (s !== socket) return;
      finish(
        new DrError(`the gateway's record stream for ${q.app}/${q.volume} ended early`, {
          code: 'gateway_unreachable',
          subject: address,
          remedy: 'run the command again; check the gateway log if it repeats',
        }),
      );
    });
  };
  const onNetError = (err: Error) =>
    finish(remaining === undefined ? client.netError(err, address) : cut(err.message, err));

  /** Asks over mutual TLS: with a key, for a ticket to a sealed stream. */
  const request = (withKey: Buffer | undefined) => {
    headUsed = 0;
    // `onread` is Node's (since 14.17) for TLS sockets too; @types/node declares it for net only.
    const options: ConnectionOptions & { onread: OnReadOpts } = {
      ...client.options.tls,
      host,
      port,
      ...(isIp(host) ? {} : { servername: host }),
      onread,
    };
    const s = connect(options);
    socket = s;
    watch(s, onNetError);
    s.once('secureConnect', () => {
      s.write(
        `GET ${path} HTTP/1.1\r\nhost: ${address}\r\nconnection: close\r\naccept: application/octet-stream\r\n${withKey ? `${BULK_HEADER}: ${withKey.toString('hex')}\r\n` : ''}\r\n`,
      );
    });
  };
  /** The ticket came: the TLS connection is done with, the records come on the sealed stream. */
  const openSealed = (offer: { key: Buffer; ticket: Buffer; port: number }) => {
    sealed = offer;
    const old = socket;
    socket = undefined;
    old?.destroy();
    headUsed = 0;
    let connected = false;
    const s = connectTcp({ host, port: offer.port, onread });
    socket = s;
    s.setNoDelay(true);
    const giveUp = setTimeout(() => s.destroy(new Error('connect timed out')), BULK_CONNECT_MS);
    watch(s, (err) => {
      if (connected) return onNetError(err);
      // The port is not reachable from here (a firewall, say): this gateway's records over TLS.
      tlsOnly.add(address);
      sealed = undefined;
      socket = undefined;
      request(undefined);
    });
    s.once('connect', () => {
      connected = true;
      clearTimeout(giveUp);
      s.write(helloOf(offer.key, offer.ticket));
    });
    s.once('close', () => clearTimeout(giveUp));
  };

  const key = tlsOnly.has(address) ? undefined : randomBytes(BULK_KEY_BYTES);
  if (client.isClosed) {
    finish(
      new DrError(`the connection to the gateway at ${client.address} was closed`, {
        code: 'gateway_unreachable',
        subject: client.address,
      }),
    );
  } else request(key);
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
