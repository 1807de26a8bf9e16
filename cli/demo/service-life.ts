// The life both demo services (demo-shop, demo-web) share: a workload at a steady rate, frozen for
// a cut (SIGUSR2, thawed by SIGUSR1 or after 30 s; STATE.frozen while so), fenced by SIGHUP with
// STATE.fence present (data closed, STATE.down) and unfenced by SIGHUP without it, served on a
// loopback port announced in STATE. Only Node's own modules, like the services.
import { rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { exists } from './script-arg.js';
import { announceService, serveOnLoopback, stopServiceOnSignal } from './service-state.js';

const FREEZE_LIMIT_MS = 30_000;

export interface ServiceParts {
  /** `demo-shop`: the name its lines on standard output start with. */
  name: string;
  state: string;
  /** Workload ticks a second. */
  rate: number;
  /** One unit of work (an order, a page view); not called while fenced or frozen. */
  tick: () => unknown;
  /** The write in flight: a freeze, a fence and a stop wait for it. */
  writing: () => Promise<unknown>;
  /** Opens the data (at start unless fenced, and on unfence). */
  openData: () => Promise<void>;
  /** Closes the data (on fence and stop); undefined when it is closed already. */
  closeData: () => Promise<void> | undefined;
  /** The lines it prints when fenced and when serving again. */
  fencedLine: string;
  unfencedLine: string;
}

/**
 * The data a service holds open (a database, a file handle) as `openData` and `closeData` want
 * it: opened at start and on unfence, closed on fence and stop; `current()` is undefined while closed.
 */
export function heldData<T extends { close(): Promise<void> }>(open: () => Promise<T>) {
  let held: T | undefined;
  return {
    current: () => held,
    openData: async () => {
      held = await open();
    },
    closeData: () => {
      const closing = held?.close();
      held = undefined;
      return closing;
    },
  };
}

/** A JSON (or, with `type`, text) answer. */
export function sendReply(
  res: ServerResponse,
  status: number,
  body: unknown,
  type = 'application/json',
): void {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof body === 'string' ? body : `${JSON.stringify(body)}\n`);
}

export class DemoService {
  private frozenUntil = 0;
  // Signals run in order, so a thaw's flag removal always precedes the next freeze's flag.
  private signals: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly parts: ServiceParts,
    private isFenced: boolean,
  ) {}

  /** Opens the data unless a failover fenced the service before this start, and starts the workload. */
  static async start(parts: ServiceParts): Promise<DemoService> {
    // Fenced by a failover before this start: two copies must never both write.
    const fenced = await exists(`${parts.state}.fence`);
    if (!fenced) await parts.openData();
    const service = new DemoService(parts, fenced);
    process.on('SIGUSR2', () => service.chain(() => service.freeze()));
    process.on('SIGUSR1', () => service.chain(() => service.thaw()));
    process.on('SIGHUP', () => service.chain(() => service.followFence()));
    service.timer = setInterval(() => {
      if (service.isFenced || service.frozen()) return;
      if (service.frozenUntil > 0) void service.thaw(); // frozen past the limit: write again
      void parts.tick();
    }, 1000 / parts.rate);
    return service;
  }

  get fenced(): boolean {
    return this.isFenced;
  }

  frozen(): boolean {
    return Date.now() < this.frozenUntil;
  }

  /** Writes nothing more; resolves once the write in flight is durable and STATE.frozen is there. */
  async freeze(): Promise<void> {
    this.frozenUntil = Date.now() + FREEZE_LIMIT_MS;
    await this.parts.writing();
    if (this.frozenUntil > 0) await writeFile(`${this.parts.state}.frozen`, '');
  }

  async thaw(): Promise<void> {
    this.frozenUntil = 0;
    await rm(`${this.parts.state}.frozen`, { force: true });
  }

  /** Serves `handle`, announces it in STATE with `info`, prints `banner(url)`, and stops on a signal. */
  async serve(
    handle: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>,
    info: Record<string, unknown>,
    banner: (url: string) => string,
  ): Promise<void> {
    const { server, url } = await serveOnLoopback(handle);
    await announceService(this.parts.state, { url, ...info }, this.isFenced);
    process.stdout.write(`${banner(url)}\n`);
    stopServiceOnSignal(
      this.parts.state,
      () => {
        clearInterval(this.timer);
        server.close();
      },
      this.parts.writing,
      this.parts.closeData,
    );
  }

  private chain(step: () => Promise<void>): void {
    this.signals = this.signals.then(step);
  }

  private async followFence(): Promise<void> {
    const down = `${this.parts.state}.down`;
    if (await exists(`${this.parts.state}.fence`)) {
      if (this.isFenced) return;
      this.isFenced = true;
      await this.parts.writing(); // the write in flight is durable before the data closes
      await this.parts.closeData();
      await writeFile(down, '');
      process.stdout.write(`${this.parts.name} ${this.parts.fencedLine}\n`);
    } else if (this.isFenced) {
      await this.parts.openData();
      this.isFenced = false;
      await rm(down, { force: true });
      process.stdout.write(`${this.parts.name} ${this.parts.unfencedLine}\n`);
    }
  }
}
