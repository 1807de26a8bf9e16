import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError } from '../../core/errors.js';
import type { ChildSpec } from './supervisor.js';

/** The command that installs redis-server on this system, from /etc/os-release. */
export function redisInstallCommand(osRelease = readOsRelease()): string {
  const ids = `${osRelease.ID ?? ''} ${osRelease.ID_LIKE ?? ''}`;
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  if (/\b(debian|ubuntu)\b/.test(ids)) return `${sudo}apt-get install -y redis-server`;
  if (/\b(fedora|rhel|centos)\b/.test(ids)) return `${sudo}dnf install -y redis`;
  if (/\balpine\b/.test(ids)) return `${sudo}apk add redis`;
  if (/\barch\b/.test(ids)) return `${sudo}pacman -S --noconfirm redis`;
  if (/\bsuse\b/.test(ids)) return `${sudo}zypper install -y redis`;
  if (process.platform === 'darwin') return 'brew install redis';
  return `${sudo}apt-get install -y redis-server`;
}

function readOsRelease(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync('/etc/os-release', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=("?)(.*)\2$/.exec(line.trim());
      if (m?.[1] && m[3] !== undefined) out[m[1]] = m[3];
    }
    return out;
  } catch {
    return {}; // no os-release: the Debian command is the best guess
  }
}

/** The version of the redis-server on PATH, or a clear error with the exact install command. */
export function findRedisServer(env: NodeJS.ProcessEnv): string {
  const r = spawnSync('redis-server', ['--version'], { env, encoding: 'utf8', timeout: 10_000 });
  const version = /v=(\d+\.\d+\.\d+)/.exec(r.stdout ?? '')?.[1];
  if (r.error || r.status !== 0 || !version) {
    throw new DrError('redis-server is not installed (not found on PATH)', {
      code: 'dependency_missing',
      subject: 'redis-server',
      remedy: `install it with \`${redisInstallCommand()}\`, or set REDIS_URL to a Redis you run yourself`,
    });
  }
  return version;
}

/**
 * redis-server on a loopback port with its data in DR_HOME/redis: append-only file, no snapshots,
 * `noeviction` (BullMQ needs every key kept), and a password made for this start, so other users
 * of the machine cannot reach it. The password is in a 0600 config file, never on the command
 * line (`ps` shows that to everyone); clients get it in REDIS_URL.
 */
export async function redisSpec(
  home: string,
  port: number,
  env: NodeJS.ProcessEnv,
  logFile: string,
): Promise<{ spec: ChildSpec; url: string }> {
  const dir = join(home, 'redis');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(24).toString('hex');
  const conf = join(dir, 'redis.conf');
  await writeFileAtomic(conf, `# written by dr up at each start\nrequirepass ${password}\n`, 0o600);
  const spec: ChildSpec = {
    name: 'redis',
    command: 'redis-server',
    args: [
      conf,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--logfile',
      '',
    ],
    env,
    logFile,
    ready: /Ready to accept connections/,
    quiet: true,
    readyTimeoutMs: 30_000,
  };
  return { spec, url: `redis://:${password}@127.0.0.1:${port}` };
}
