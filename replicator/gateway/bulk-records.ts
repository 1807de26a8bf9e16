/** The gateway's sealed record streams: plain TCP for records a mutual-TLS request asked for (transport/bulk-stream.ts). */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { errorBody } from '../../core/http-router.js';
import { type Logger, silentLog } from '../../core/log.js';
import {
  answerOf,
  BULK_MAGIC,
  HELLO_BYTES,
  proofMatches,
  TICKET_BYTES,
  TICKET_MS,
} from '../transport/bulk-stream.js';
import { httpStatusOf } from './http-status.js';
import type { RecordOut } from './record-stream.js';

/** Streams the records a ticket was given for into `out`; throws before `out.begin` to refuse. */
export type ServeRecords = (out: RecordOut) => Promise<void>;

export interface BulkRecords {
  /** The port readers connect to (on the gateway's listen host). */
  readonly port: number;
  /** A ticket (hex) for one stream of `serve`, proved with `key`. */
  offer(key: Buffer, serve: ServeRecords): string;
  close(): Promise<void>;
}

/** A connection that has not sent its hello within this long is closed. */
const HELLO_MS = 10_000;
/**
 * A reader that takes nothing for this long is dropped: the stream holds the app's read lock,
 * which retention and garbage collection wait for.
 */
const IDLE_MS = 120_000;

/**
 * Listens on `host:port` (0: a free port) for sealed record streams. A connection that does not
 * open with a live ticket and the proof of its key is closed without a byte, and logged.
 */
export async function openBulkRecords({
  host,
  port,
  log = silentLog,
  now = Date.now,
}: {
  host: string;
  port: number;
  log?: Logger;
  now?: () => number;
}): Promise<BulkRecords> {
  const tickets = new Map<string, { key: Buffer; serve: ServeRecords; expires: number }>();
  const sockets = new Set<Socket>();
  const refuse = (socket: Socket, why: string) => {
    log.warn({ remote: socket.remoteAddress, why }, 'sealed record stream refused');
    socket.destroy();
  };

  const onHello = (socket: Socket, hello: Buffer) => {
    if (!hello.subarray(0, BULK_MAGIC.length).equals(BULK_MAGIC)) return refuse(socket, 'no hello');
    const ticket = hello.subarray(BULK_MAGIC.length, BULK_MAGIC.length + TICKET_BYTES);
    const id = ticket.toString('hex');
    const t = tickets.get(id);
    tickets.delete(id); // good once, whatever follows
    if (!t || t.expires < now()) return refuse(socket, 'unknown or expired ticket');
    if (!proofMatches(t.key, 'reader', ticket, hello.subarray(BULK_MAGIC.length + TICKET_BYTES)))
      return refuse(socket, 'wrong proof');
    socket.setTimeout(IDLE_MS, () => {
      log.warn({ remote: socket.remoteAddress }, 'sealed record stream idle: dropped');
      socket.destroy();
    });
    let begun = false;
    const out: RecordOut = {
      sink: socket,
      begin: (length) => {
        begun = true;
        socket.write(answerOf(t.key, ticket, 200, length));
      },
    };
    t.serve(out).then(
      () => socket.end(),
      (err: unknown) => {
        log.warn({ err: errorMessage(err) }, 'sealed record stream failed');
        if (begun || socket.destroyed) {
          socket.destroy();
          return;
        }
        const body = Buffer.from(JSON.stringify(errorBody(err, 'internal gateway error')));
        socket.end(Buffer.concat([answerOf(t.key, ticket, httpStatusOf(err), body.length), body]));
      },
    );
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', (err) => log.debug({ err: errorMessage(err) }, 'record stream socket'));
    socket.setNoDelay(true);
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => refuse(socket, 'no hello in time'), HELLO_MS);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < HELLO_BYTES) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      // A reader sends nothing after its hello: more is not this protocol.
      if (got.length > HELLO_BYTES) return refuse(socket, 'bytes after the hello');
      onHello(socket, got);
    };
    socket.on('data', onData);
    socket.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new DrError(
          `gateway cannot listen for record streams on ${host}:${port} (${systemCode(err) ?? errorMessage(err)})`,
          {
            code: 'usage',
            subject: `${host}:${port}`,
            remedy:
              'choose another gateway.recordStreams in dr.yaml (HOST:PORT, or false for TLS only), or stop what holds that port',
            cause: err,
          },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    offer(key, serve) {
      const t = now();
      for (const [id, x] of tickets) if (x.expires < t) tickets.delete(id);
      const id = randomBytes(TICKET_BYTES).toString('hex');
      tickets.set(id, { key, serve, expires: t + TICKET_MS });
      return id;
    },
    close: () =>
      new Promise<void>((resolve) => {
        tickets.clear();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
