#!/usr/bin/env node
// Container health checks for docker-compose.yml; exit 0 healthy, 1 not, with one line saying why.
//   healthcheck.mjs http URL        the URL answers 2xx within 3 s
//   healthcheck.mjs tcp HOST:PORT   something accepts connections there within 3 s
//   healthcheck.mjs gateway HOST:PORT  the gateway completes a mutual-TLS handshake with the home's
//                                      agent certificate ($DR_HOME/tls): a bare TCP probe of that
//                                      port made the gateway log a refused handshake every time
//   healthcheck.mjs worker          a recovery worker is connected to the queue (REDIS_URL, DR_REDIS_PREFIX)
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

const [mode, target] = process.argv.slice(2);
const TIMEOUT_MS = 3000;

function done(ok, why) {
  (ok ? process.stdout : process.stderr).write(`${ok ? 'healthy' : 'unhealthy'}: ${why}\n`);
  process.exit(ok ? 0 : 1);
}

async function http(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    done(res.ok, `${url} answered ${res.status}`);
  } catch (err) {
    done(false, `${url}: ${err.cause?.code ?? err.message}`);
  }
}

function tcp(hostPort) {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(hostPort ?? '');
  if (!m) done(false, `${hostPort} is not HOST:PORT`);
  const socket = connect(Number(m[2]), m[1]);
  socket.setTimeout(TIMEOUT_MS, () =>
    done(false, `${hostPort}: no answer within ${TIMEOUT_MS} ms`),
  );
  socket.on('connect', () => {
    socket.end();
    done(true, `${hostPort} accepts connections`);
  });
  socket.on('error', (err) => done(false, `${hostPort}: ${err.code ?? err.message}`));
}

function gateway(hostPort) {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(hostPort ?? '');
  if (!m) done(false, `${hostPort} is not HOST:PORT`);
  const tls = join(process.env.DR_HOME || '.lifeboat', 'tls');
  let creds;
  try {
    creds = {
      ca: readFileSync(join(tls, 'ca.crt')),
      cert: readFileSync(join(tls, 'agent.crt')),
      key: readFileSync(join(tls, 'agent.key')),
    };
  } catch (err) {
    done(false, `cannot read the home's certificates in ${tls}: ${err.code ?? err.message}`);
  }
  const socket = tlsConnect({
    host: m[1],
    port: Number(m[2]),
    ...creds,
    minVersion: 'TLSv1.3',
    // The certificate names the gateway's public name; here it is reached on loopback.
    checkServerIdentity: () => undefined,
  });
  socket.setTimeout(TIMEOUT_MS, () =>
    done(false, `${hostPort}: no TLS handshake within ${TIMEOUT_MS} ms`),
  );
  socket.on('secureConnect', () => {
    socket.end();
    done(true, `${hostPort} completed a mutual-TLS handshake`);
  });
  socket.on('error', (err) => done(false, `${hostPort}: ${err.code ?? err.message}`));
}

async function worker() {
  const url = process.env.REDIS_URL;
  if (!url) done(false, 'REDIS_URL is not set');
  const prefix = (process.env.DR_REDIS_PREFIX || 'lifeboat:').replace(/:$/, '');
  const { Queue } = await import('bullmq');
  const { Redis } = await import('ioredis');
  const connection = new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: TIMEOUT_MS,
    retryStrategy: () => null,
  });
  connection.on('error', () => undefined); // reported below through the failed command
  const queue = new Queue('lifeboat-recovery', { connection, prefix });
  const timer = setTimeout(
    () => done(false, `Redis did not answer within ${TIMEOUT_MS} ms`),
    TIMEOUT_MS,
  );
  try {
    const workers = await queue.getWorkers();
    clearTimeout(timer);
    done(workers.length > 0, `${workers.length} recovery worker(s) connected to the queue`);
  } catch (err) {
    done(false, `cannot ask Redis for workers: ${err.message}`);
  }
}

if (mode === 'http') await http(target);
else if (mode === 'tcp') tcp(target);
else if (mode === 'gateway') gateway(target);
else if (mode === 'worker') await worker();
else
  done(
    false,
    `unknown mode ${mode ?? '(none)'}: use http URL, tcp HOST:PORT, gateway HOST:PORT or worker`,
  );
