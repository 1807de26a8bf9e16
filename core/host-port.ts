// HOST:PORT, parsed one way everywhere: IPv4, a DNS name or [IPv6], and a port from 0 (or 1) to 65535.
import { z } from 'zod';

export interface HostPort {
  /** Without brackets: `::1`, not `[::1]`. */
  host: string;
  port: number;
}

const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/**
 * Splits HOST:PORT (surrounding blanks ignored), or undefined when it is not one: a missing port,
 * an IPv6 address without brackets, a port past 65535, or port 0 when `minPort` is 1.
 */
export function tryHostPort(text: string, minPort: 0 | 1 = 0): HostPort | undefined {
  const m = HOST_PORT.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < minPort || port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** `127.0.0.1:7443`, `[::1]:7443`: brackets around an IPv6 host. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** HOST:PORT in dr.yaml: kept as written, checked like `tryHostPort` (blanks around it refused). */
export const hostPortSchema = z
  .string()
  .refine(
    (v) => v === v.trim() && tryHostPort(v) !== undefined,
    'expected HOST:PORT, like 127.0.0.1:7443',
  );
