import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { request } from 'node:https';
import { isAbsolute, resolve } from 'node:path';
import type { LoadedConfig } from '../../core/config.js';
import { readEnv } from '../../core/env.js';
import { errorMessage } from '../../core/errors.js';
import { homePaths } from '../../core/home.js';
import { connectRedis, redisUrlFrom } from '../../core/redis.js';
import { findTracefs } from '../../replicator/capture/tracefs.js';
import { tlsClientOptions } from '../../replicator/transport/tls-options.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';

/** One finding of `dr doctor`. `warn` works but is degraded; `fail` is broken (exit 1). */
export interface Finding {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  remedy?: string;
}

const ok = (check: string, detail: string): Finding => ({ check, status: 'ok', detail });
const warn = (check: string, detail: string, remedy: string): Finding => ({
  check,
  status: 'warn',
  detail,
  remedy,
});
const fail = (check: string, detail: string, remedy: string): Finding => ({
  check,
  status: 'fail',
  detail,
  remedy,
});

const DAY_MS = 86_400_000;
/** Certificates this close to their end are a warning. */
const EXPIRY_WARN_DAYS = 30;
/** A gateway clock this far off (HTTP Date, ±1 s) is a warning; points and RPO are timed by it. */
const CLOCK_WARN_MS = 2000;

/** Redis reachable, its version, and `noeviction` (BullMQ loses jobs otherwise). */
export async function checkRedis(env: NodeJS.ProcessEnv): Promise<Finding> {
  let url: string | undefined;
  try {
    url = redisUrlFrom(env);
  } catch (err) {
    return fail('redis', errorMessage(err), 'set REDIS_URL like redis://127.0.0.1:6379');
  }
  if (!url) {
    return fail(
      'redis',
      'REDIS_URL is not set and no `dr up` runs on this home',
      'start everything with `dr up`, or set REDIS_URL to a running Redis',
    );
  }
  const where = new URL(url).host;
  const redis = connectRedis(url, 'lifeboat-doctor');
  let lastError = '';
  redis.on('error', (err: Error) => {
    lastError = err.message; // reported below when INFO does not answer
  });
  try {
    const info = await Promise.race([
      redis.info(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref(),
      ),
    ]);
    const field = (k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    const version = field('redis_version') ?? '?';
    const policy = field('maxmemory_policy');
    const [major = 0, minor = 0] = version.split('.').map(Number);
    if (policy && policy !== 'noeviction') {
      return fail(
        'redis',
        `Redis ${version} at ${where} evicts keys (maxmemory-policy ${policy}): queued jobs and approvals can vanish`,
        'set `maxmemory-policy noeviction` in its configuration (CONFIG SET maxmemory-policy noeviction)',
      );
    }
    if (major < 6 || (major === 6 && minor < 2)) {
      return warn(
        'redis',
        `Redis ${version} at ${where} answers; BullMQ recommends 6.2 or newer`,
        'upgrade Redis to 6.2 or newer',
      );
    }
    return ok('redis', `Redis ${version} at ${where} answers (maxmemory-policy ${policy ?? '?'})`);
  } catch (err) {
    return fail(
      'redis',
      `cannot reach Redis at ${where}: ${lastError || errorMessage(err)}`,
      'start redis-server (or `dr up`), or point REDIS_URL at a running one',
    );
  } finally {
    redis.disconnect();
  }
}

/** What the trace tracker needs: root, tracefs with the block tracepoint, loop devices. */
export async function checkTrace(env: NodeJS.ProcessEnv, home?: string): Promise<Finding[]> {
  const out: Finding[] = [];
  const root = process.getuid?.() === 0;
  if (!root) {
    out.push(
      warn(
        'root',
        'not running as root: agents here find changes by scanning (RPO = scan time) and cannot fsfreeze',
        'run `dr agent` (or `dr up`) as root for block tracing and fsfreeze',
      ),
    );
  } else {
    out.push(ok('root', 'running as root: block tracing and fsfreeze are allowed'));
  }
  const tracefs = await findTracefs(readEnv('DR_TRACEFS', env));
  // `dr up --demo` as root mounts a tracefs of its own for its agent when the system has none.
  const demo = home && !tracefs ? await findTracefs(resolve(home, 'demo', 'tracefs')) : undefined;
  if (!tracefs && demo && existsSync(resolve(demo, 'events/block/block_bio_queue'))) {
    out.push(
      ok(
        'tracefs',
        `not mounted system-wide, but the demo's agent traces block writes through its private mount ${demo}; other agents fall back to scanning`,
      ),
    );
  } else if (!tracefs) {
    out.push(
      warn(
        'tracefs',
        `tracefs is not mounted at ${readEnv('DR_TRACEFS', env) ?? '/sys/kernel/tracing or /sys/kernel/debug/tracing'}: agents started by hand fall back to scanning (\`dr up --demo\` as root mounts a private one for its agent)`,
        'mount it with `mount -t tracefs nodev /sys/kernel/tracing` (or set DR_TRACEFS to a tracefs mount)',
      ),
    );
  } else if (!existsSync(resolve(tracefs, 'events/block/block_bio_queue'))) {
    out.push(
      warn(
        'tracefs',
        `${tracefs} has no block/block_bio_queue tracepoint: this kernel cannot trace block writes`,
        'use a kernel with block tracepoints (CONFIG_BLK_DEV_IO_TRACE), or keep the scan tracker',
      ),
    );
  } else {
    out.push(ok('tracefs', `${tracefs} has the block_bio_queue tracepoint`));
  }
  const losetup = spawnSync('losetup', ['--version'], { env, stdio: 'ignore' });
  if (losetup.error || losetup.status !== 0) {
    out.push(
      warn(
        'loop',
        'losetup is missing: image files cannot be attached as loop devices for tracing',
        'install util-linux (`apt-get install -y mount`)',
      ),
    );
  } else if (!existsSync('/dev/loop-control')) {
    out.push(
      warn(
        'loop',
        'no /dev/loop-control: this system has no loop devices',
        'load the loop module (`modprobe loop`) or give the container loop devices',
      ),
    );
  } else {
    out.push(ok('loop', 'loop devices available (/dev/loop-control, losetup)'));
  }
  return out;
}

/** The home's certificates: readable, within their validity, signed by the home's CA, keys matching. */
export async function checkCertificates(
  config: LoadedConfig,
  now = Date.now(),
): Promise<Finding[]> {
  const p = homePaths(config.home);
  const out: Finding[] = [];
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(await readFile(p.caCert));
  } catch (err) {
    return [
      fail(
        'certificates',
        `the CA certificate ${p.caCert} is unreadable: ${errorMessage(err)}`,
        'restore tls/ from a backup of this home, or make a new home with `dr init`',
      ),
    ];
  }
  for (const [name, certPath, keyPath] of [
    ['ca', p.caCert, p.caKey],
    ['gateway', p.gatewayCert, p.gatewayKey],
    ['agent', p.agentCert, p.agentKey],
  ] as const) {
    const check = `cert ${name}`;
    try {
      const cert = new X509Certificate(await readFile(certPath));
      const key = createPrivateKey(await readFile(keyPath));
      const until = Date.parse(cert.validTo);
      const days = Math.floor((until - now) / DAY_MS);
      if (!cert.checkPrivateKey(key)) {
        out.push(
          fail(check, `${keyPath} is not the key of ${certPath}`, 'restore the pair from a backup'),
        );
      } else if (name !== 'ca' && !cert.verify(ca.publicKey)) {
        out.push(
          fail(
            check,
            `${certPath} is not signed by this home's CA (${p.caCert}): TLS between agent and gateway fails`,
            'copy tls/ from the home that made it, so both sides share one CA',
          ),
        );
      } else if (Date.parse(cert.validFrom) > now) {
        out.push(
          fail(
            check,
            `${certPath} is not valid before ${cert.validFrom}`,
            "check this machine's clock",
          ),
        );
      } else if (days < 0) {
        out.push(
          fail(
            check,
            `${certPath} expired on ${cert.validTo}`,
            'make new certificates: `dr init --force` in a copy of the home, then copy its tls/ to every machine',
          ),
        );
      } else if (days < EXPIRY_WARN_DAYS) {
        out.push(
          warn(
            check,
            `${certPath} expires in ${days} days (${cert.validTo})`,
            'renew the certificates before then (new tls/ from `dr init --force` in a copy of the home)',
          ),
        );
      } else {
        out.push(ok(check, `valid for ${days} more days (until ${cert.validTo})`));
      }
    } catch (err) {
      out.push(
        fail(
          check,
          `${certPath} or its key is unreadable: ${errorMessage(err)}`,
          'restore tls/ from a backup of this home',
        ),
      );
    }
  }
  return out;
}

/** The key encryption key exists, is private to its owner, and has the right size. */
export async function checkKek(config: LoadedConfig): Promise<Finding> {
  const path = homePaths(config.home).kek;
  try {
    const s = await stat(path);
    if ((s.mode & 0o077) !== 0) {
      return warn(
        'kek',
        `${path} can be read by others (mode ${(s.mode & 0o777).toString(8)})`,
        `chmod 600 ${path}`,
      );
    }
    return ok('kek', `${path} present (mode 600)`);
  } catch (err) {
    return fail(
      'kek',
      `the key encryption key ${path} is unreadable: ${errorMessage(err)}`,
      'restore keys/kek.key from its backup: without it no replica can be read',
    );
  }
}

/** The gateway answers over mutual TLS, its clock (HTTP Date), and the agents' measured offsets. */
export async function checkGateway(config: LoadedConfig): Promise<Finding[]> {
  const address = config.gateway.address;
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const port = Number(/:(\d+)$/.exec(address)?.[1]);
  let answer: { statuses: AppStatus[]; date: string | undefined; t0: number; t1: number };
  try {
    answer = await getStatus(host, port, tlsClientOptions(homePaths(config.home), host));
  } catch (err) {
    return [
      fail(
        'gateway',
        `cannot reach the gateway at ${address}: ${errorMessage(err)}`,
        'start it (`dr gateway`, or `dr up`), or correct gateway.address in dr.yaml / DR_GATEWAY',
      ),
    ];
  }
  const out: Finding[] = [
    ok('gateway', `${address} answers over mutual TLS (${answer.statuses.length} app(s) known)`),
  ];
  const server = answer.date ? Date.parse(answer.date) : Number.NaN;
  if (Number.isNaN(server)) {
    out.push(warn('clock', 'the gateway sent no Date header', 'check the gateway version'));
  } else {
    // Date has whole seconds: the gateway's clock lies in [server, server + 1 s).
    const offset = server + 500 - (answer.t0 + answer.t1) / 2;
    const text = `gateway clock minus this machine's: ${(offset / 1000).toFixed(1)} s (±1 s, from HTTP Date)`;
    out.push(
      Math.abs(offset) > CLOCK_WARN_MS
        ? warn(
            'clock',
            text,
            'synchronise both clocks with NTP (`timedatectl set-ntp true`): RPO and point times use the gateway clock',
          )
        : ok('clock', text),
    );
  }
  for (const s of answer.statuses) {
    const o = s.agent?.clockOffsetMs;
    if (o !== undefined && Math.abs(o) > CLOCK_WARN_MS) {
      out.push(
        warn(
          'clock',
          `the agent of ${s.app} on ${s.agent?.host} is ${(o / 1000).toFixed(1)} s off the gateway`,
          `synchronise the clock of ${s.agent?.host} with NTP`,
        ),
      );
    }
  }
  return out;
}

function getStatus(
  host: string,
  port: number,
  tls: ReturnType<typeof tlsClientOptions>,
): Promise<{ statuses: AppStatus[]; date: string | undefined; t0: number; t1: number }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = Date.now();
    const req = request(
      { host, port, path: '/v1/status', method: 'GET', timeout: 5000, agent: false, ...tls },
      (res) => {
        const t1 = Date.now();
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 400) {
            reject(new Error(`HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
            return;
          }
          try {
            resolvePromise({
              statuses: JSON.parse(body) as AppStatus[],
              date: res.headers.date,
              t0,
              t1,
            });
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** The policy files load with no problem (the engine's lint). */
export async function checkPolicies(config: LoadedConfig): Promise<Finding> {
  const dir = isAbsolute(config.policies) ? config.policies : resolve(config.home, config.policies);
  if (!existsSync(dir)) {
    return fail(
      'policies',
      `the policy directory ${dir} is missing: the engine has no policies to apply`,
      'copy the shipped policies/ there (a new `dr init` does), or set policies: in dr.yaml',
    );
  }
  // The engine loads json-rules-engine: only here, when doctor runs.
  const { loadPolicyDir } = await import('../../engine/policy-set.js');
  const { policyParseOptions } = await import('../../engine/policy-parse-options.js');
  const r = await loadPolicyDir(dir, await policyParseOptions(config, config.home));
  if (r.problems.length > 0) {
    const first = r.problems[0];
    return fail(
      'policies',
      `${r.problems.length} problem(s) in ${dir}; first: ${first?.file}:${first?.line}: ${first?.reason}`,
      'run `dr policy lint` for all of them and fix each file; meanwhile a running engine denies every action',
    );
  }
  return ok('policies', `${r.set?.policies.length ?? 0} policies in ${dir}, lint-clean`);
}
