#!/usr/bin/env node
// The transport floor of bench:replication: the same file over the same kind
// of link (TLS 1.3, mutual TLS, loopback, Node's TLS stack) into a file, and
// nothing else: no block hashing, no block encryption, no index, and (like
// rsync) no fsync. No agent can be faster than this on the machine, so it
// says how much of the initial-sync time the link alone takes.
//   node bench/tls-floor.mjs server --tls DIR --out FILE   (prints "listening PORT", exits after one copy)
//   node bench/tls-floor.mjs client --tls DIR --port N --file FILE
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tls: { type: 'string' },
    out: { type: 'string' },
    port: { type: 'string' },
    file: { type: 'string' },
  },
});
const pem = (name) => readFileSync(join(args.tls, name));
const CHUNK = 4 * 1024 * 1024;

if (positionals[0] === 'server') {
  const server = createServer(
    {
      key: pem('gateway.key'),
      cert: pem('gateway.crt'),
      ca: pem('ca.crt'),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (socket) => {
      const fd = openSync(args.out, 'w', 0o600);
      socket.on('data', (chunk) => writeSync(fd, chunk));
      socket.on('end', () => {
        closeSync(fd);
        socket.end('ok', () => server.close());
      });
    },
  );
  server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
} else if (positionals[0] === 'client') {
  const socket = connect({
    host: '127.0.0.1',
    port: Number(args.port),
    key: pem('agent.key'),
    cert: pem('agent.crt'),
    ca: pem('ca.crt'),
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined,
  });
  await new Promise((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const fd = openSync(args.file, 'r');
  // Two buffers in turn: one is read into while the other is written; a buffer
  // is reused only once its write has completed.
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const written = [Promise.resolve(), Promise.resolve()];
  for (let turn = 0; ; turn ^= 1) {
    await written[turn];
    const buf = buffers[turn];
    const n = readSync(fd, buf, 0, CHUNK, null);
    if (n === 0) break;
    written[turn] = new Promise((resolve, reject) =>
      socket.write(buf.subarray(0, n), (err) => (err ? reject(err) : resolve())),
    );
  }
  await Promise.all(written);
  closeSync(fd);
  socket.end();
  await new Promise((resolve) => socket.once('data', resolve)); // the server's "ok": all written
  socket.destroy();
} else {
  console.error('usage: tls-floor.mjs server|client …');
  process.exit(2);
}
