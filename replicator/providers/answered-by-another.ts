/** Whether another operation's local server listens where a health check asks (Linux /proc). */
import { readdir, readFile, readlink } from 'node:fs/promises';

/** `st` of a listening socket in /proc/net/tcp{,6}. */
const LISTEN = '0A';
const ANY_V6 = '0'.repeat(32);
const LOOPBACK_V6 = `${'0'.repeat(24)}01000000`;
const V4_MAPPED = `${'0'.repeat(16)}FFFF0000`;

/**
 * The local provider starts every server with DR_OP_ID in its environment. When another
 * operation's server listens on the port a URL check asks on this machine (a kept drill beside a
 * failover of the same app: one start command, one port), a passing check says nothing about this
 * operation's server, which may have failed to bind. Resolves why the check does not count, naming
 * that server, or undefined: no other one listens there, the check is a command or asks another
 * machine, or /proc cannot tell (then the check counts, as it always did).
 */
export async function answeredByAnother(
  check: { url?: string },
  opId: string,
): Promise<string | undefined> {
  const port = check.url === undefined ? undefined : localPort(check.url);
  if (port === undefined) return undefined;
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return undefined;
  const entries = await readdir('/proc').catch(() => [] as string[]); // no /proc: cannot tell
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const other = await serverOp(e);
    if (other === undefined || other === opId) continue;
    if (await holdsAny(e, inodes))
      return `${check.url} was answered by the server of ${other} (pid ${e}), not by this one`;
  }
  return undefined;
}

/** The port of a URL on this machine (loopback or any address), else undefined. */
function localPort(url: string): number | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined; // not a URL: a command check, nothing to look at
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const local = host === 'localhost' || host === '::1' || host === '0.0.0.0' || /^127\./.test(host);
  if (!local) return undefined;
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

/** Inodes of the sockets listening on `port` at an address a loopback request reaches. */
async function listeningInodes(port: number): Promise<Set<string>> {
  const out = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => ''); // no IPv6 (or no /proc): none there
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      const [addr = '', hexPort = ''] = (f[1] ?? '').split(':');
      const inode = f[9];
      if (f[3] !== LISTEN || Number.parseInt(hexPort, 16) !== port || !inode || inode === '0')
        continue;
      if (reachesLoopback(addr)) out.add(inode);
    }
  }
  return out;
}

/** A listening address (kernel hex) a request to 127.0.0.1 or ::1 reaches: loopback or any. */
function reachesLoopback(addr: string): boolean {
  const v4 = (a: string) => a === '00000000' || a.endsWith('7F'); // little-endian: 127.x.x.x ends 7F
  if (addr.length === 8) return v4(addr);
  if (addr === ANY_V6 || addr === LOOPBACK_V6) return true;
  return addr.startsWith(V4_MAPPED) && v4(addr.slice(24));
}

/** DR_OP_ID of a process, when it is a server some operation started. */
async function serverOp(pid: string): Promise<string | undefined> {
  const environ = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => ''); // gone, or not ours
  for (const kv of environ.split('\0')) if (kv.startsWith('DR_OP_ID=')) return kv.slice(9);
  return undefined;
}

/** Whether the process holds one of the sockets. */
async function holdsAny(pid: string, inodes: Set<string>): Promise<boolean> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]); // gone, or not ours
  for (const fd of fds) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''); // closed meanwhile
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m?.[1] && inodes.has(m[1])) return true;
  }
  return false;
}
