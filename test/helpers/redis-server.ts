import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './lifeboat-home.js';

export interface TestRedis {
  url: string;
  stop: () => Promise<void>;
  /** Ends the server at once, as a crash would. */
  kill9: () => Promise<void>;
  /**
   * Kills the server (SIGKILL, like a crash) and starts it again on the same port. With
   * `persistDir` it comes back with its data (append-only file, fsync on every write);
   * without, empty.
   */
  restart: (downMs?: number) => Promise<void>;
}

export interface TestRedisOptions {
  /** A free one unless given. */
  port?: number;
  /** Keep data in an append-only file here (fsync'd on every write); no persistence without. */
  persistDir?: string;
}

/** Why a real redis-server cannot run here, or undefined. */
export function redisUnavailable(): string | undefined {
  const r = spawnSync('redis-server', ['--version']);
  return r.status === 0
    ? undefined
    : 'redis-server is not installed (apt-get install -y redis-server)';
}

/** A throwaway redis-server on a loopback port; stopped by `stop`. A number is the port. */
export async function startRedis(o: number | TestRedisOptions = {}): Promise<TestRedis> {
  const opts: TestRedisOptions = typeof o === 'number' ? { port: o } : o;
  const port = opts.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', ''];
  if (opts.persistDir) {
    args.push('--dir', opts.persistDir, '--appendonly', 'yes', '--appendfsync', 'always');
  } else args.push('--appendonly', 'no');
  const url = `redis://127.0.0.1:${port}`;
  let child = await launch(args, url, port);
  const ended = (c: ChildProcess) =>
    new Promise((r) =>
      c.exitCode !== null || c.signalCode !== null ? r(undefined) : c.once('exit', r),
    );
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await ended(child);
    },
    kill9: async () => {
      child.kill('SIGKILL');
      await ended(child);
    },
    restart: async (downMs = 0) => {
      child.kill('SIGKILL');
      await ended(child);
      await sleep(downMs);
      child = await launch(args, url, port);
    },
  };
}

async function launch(args: string[], url: string, port: number): Promise<ChildProcess> {
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
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
      return child;
    } catch {
      probe.disconnect();
      if (Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${port}`);
      }
      await sleep(50);
    }
  }
}
