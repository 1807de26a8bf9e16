// The state files a demo service (demo-shop, demo-web) keeps beside STATE, for its hooks and
// checks: STATE (its pid and address, written whole), STATE.pid, STATE.down while fenced, and
// STATE.frozen while frozen. Only Node's own modules, like the services.
import { rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** Says where the service is: STATE's JSON, STATE.pid, and STATE.down when it starts fenced. */
export async function announceService(
  state: string,
  info: Record<string, unknown>,
  fenced: boolean,
): Promise<void> {
  await writeFile(`${state}.tmp`, `${JSON.stringify({ pid: process.pid, ...info })}\n`);
  await rename(`${state}.tmp`, state);
  await rm(`${state}.frozen`, { force: true });
  if (fenced) await writeFile(`${state}.down`, '');
  else await rm(`${state}.down`, { force: true });
  await writeFile(`${state}.pid`, `${process.pid}\n`);
}

/**
 * On SIGTERM or SIGINT: `stopWork` (stop the workload, close the server), then wait for the
 * write in flight (`settle`), close the data (`close`), clear STATE.pid and STATE.frozen, exit 0.
 */
export function stopServiceOnSignal(
  state: string,
  stopWork: () => void,
  settle: () => Promise<unknown>,
  close: () => Promise<void> | undefined,
): void {
  const stop = async () => {
    stopWork();
    await rm(`${state}.pid`, { force: true });
    await rm(`${state}.frozen`, { force: true });
    await settle();
    await close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

/** Serves `handle` on a free loopback port; a request that throws gets a 500 with the error. */
export async function serveOnLoopback(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ error: String(err) })}\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}` };
}
