import { createServer } from 'node:net';
import { DrError } from '../../core/errors.js';
import { formatHostPort, type HostPort, tryHostPort } from '../../core/host-port.js';

/** Splits HOST:PORT (IPv4, [IPv6] or a name; port 0-65535), or fails naming `what`. */
export function parseHostPort(value: string, what: string): HostPort {
  const hp = tryHostPort(value);
  if (!hp) {
    throw new DrError(`${what} ${JSON.stringify(value)} is not HOST:PORT`, {
      code: 'usage',
      subject: what,
      remedy: 'write it like 127.0.0.1:8787',
    });
  }
  return hp;
}

/** Whether something can listen on host:port now (false when it is taken, or the host is not ours). */
export function portFree({ host, port }: HostPort): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port the system has free on `host` now (it is closed again before it is returned). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * The address to listen on: `wanted` when free; taken and `explicit` (the user named it) is an
 * error naming the address; taken and a default, another free port on the same host, with why.
 */
export async function choosePort(
  wanted: HostPort,
  what: string,
  explicit: boolean,
  flag: string,
): Promise<{ address: HostPort; note?: string }> {
  if (await portFree(wanted)) return { address: wanted };
  const text = formatHostPort(wanted);
  if (explicit) {
    throw new DrError(`${what}: ${text} is in use (or not an address of this machine)`, {
      code: 'port_in_use',
      subject: text,
      remedy: `stop what listens there (\`ss -ltnp 'sport = :${wanted.port}'\` shows it) or pass another ${flag}`,
    });
  }
  const address = { host: wanted.host, port: await freePort(wanted.host) };
  return {
    address,
    note: `${what}: ${text} is in use, so ${formatHostPort(address)} is used instead`,
  };
}
