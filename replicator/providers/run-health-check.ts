import { spawn } from 'node:child_process';
import { errorMessage } from '../../core/errors.js';
import type { HealthResult } from './provider.js';

export interface HealthCheck {
  /** Shell command run on this machine with LIFEBOAT_SERVER_IP set; exit 0 is healthy. */
  command?: string;
  /** URL fetched with GET, `{ip}` replaced by the server's address; a 2xx answer is healthy. */
  url?: string;
}

const MAX_OUTPUT = 2000;

/**
 * Runs the configured check against `ip`, bounded by `timeoutMs`; never throws. `env` is added to a
 * command check's environment (the local provider passes its DR_VOLUME_* paths).
 */
export async function runHealthCheck(
  check: HealthCheck,
  ip: string,
  {
    timeoutMs,
    signal,
    env = {},
  }: { timeoutMs: number; signal: AbortSignal; env?: Record<string, string> },
): Promise<HealthResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  if (check.url !== undefined) {
    const url = check.url.replaceAll('{ip}', ip);
    try {
      const res = await fetch(url, {
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
      const text = (await res.text()).slice(0, MAX_OUTPUT);
      return { ok: res.ok, output: `HTTP ${res.status} ${text}`.trim(), ms: ms() };
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      const why = timedOut ? `no answer within ${timeoutMs} ms` : errorMessage(err);
      return { ok: false, output: `GET ${url}: ${why}`, ms: ms() };
    }
  }
  if (check.command !== undefined) {
    const { code, output, timedOut } = await runCommand(check.command, ip, timeoutMs, signal, env);
    const suffix = timedOut ? `\n(killed after ${timeoutMs} ms)` : '';
    return { ok: code === 0 && !timedOut, output: `${output}${suffix}`.trim(), ms: ms() };
  }
  return { ok: true, output: 'no health check configured', ms: ms() };
}

function runCommand(
  command: string,
  ip: string,
  timeoutMs: number,
  signal: AbortSignal,
  extraEnv: Record<string, string>,
) {
  return new Promise<{ code: number | null; output: string; timedOut: boolean }>((resolve) => {
    // The check runs our operator's command: keep cloud credentials out of its environment.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^ALIBABA_CLOUD_|SECRET/i.test(k)),
    );
    const child = spawn('/bin/sh', ['-c', command], {
      env: { ...env, ...extraEnv, LIFEBOAT_SERVER_IP: ip },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const keep = (b: Buffer) => {
      output = (output + b.toString('utf8')).slice(-MAX_OUTPUT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const kill = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    const onAbort = () => kill();
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (code: number | null, extra = '') => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ code, output: output + extra, timedOut });
    };
    child.on('error', (err) => done(null, `\n${errorMessage(err)}`));
    child.on('close', (code) => done(code));
  });
}
