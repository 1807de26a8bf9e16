import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './lifeboat-home.js';

export interface TestRedis {
  url: string;
  stop: () => Promise<void>;
  /** Ends the server at once, as a crash would. */
  kill9: () => Promise<void>;
}

/** Why a real redis-server cannot run here, or undefined. */
export function redisUnavailable(): string | undefined {
  const r = spawnSync('redis-server', ['--version']);
  return r.status === 0
    ? undefined
    : 'redis-server is not installed (apt-get install -y redis-server)';
}

/** A throwaway redis-server on a loopback port (a free one unless given), no persistence; stopped by `stop`. */
export async function startRedis(port?: number): Promise<TestRedis> {
  port ??= await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const until = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined); // refused while the server starts: the loop retries
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch {
      probe.disconnect();
      if (Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${port}`);
      }
      await sleep(50);
    }
  }
  const ended = new Promise((r) =>
    child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r),
  );
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await ended;
    },
    kill9: async () => {
      child.kill('SIGKILL');
      await ended;
    },
  };
}
