// demo-web: the demo shop's web front, run by `dr up --demo`. Usage:
//   node web-front.js --image PATH --state FILE --upstream FILE --shop-state FILE [--rate VIEWS_PER_SECOND]
// It serves the storefront (GET /: the newest order demo-shop holds), and renders it by itself at a
// steady rate (the workload), recording each page view in its own volume (--image, web-views.ts).
// Which demo-shop it shows: the --upstream file names the state file of the shop to use (the
// plan's hook writes it: the DR site's shop after a failover); without it, --shop-state.
//   GET /health, GET /views/last, GET / (HTML).
// Quiesce and fencing follow demo-shop's signals and flag files: SIGUSR2 freezes (STATE.frozen
// while frozen, at most 30 s), SIGUSR1 thaws; SIGHUP with STATE.fence closes the volume and serves
// nothing (STATE.down), SIGHUP without it opens the volume again.
import { open, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { scriptArg } from './script-arg.js';
import { DemoService, heldData, sendReply } from './service-life.js';
import { encodeView, readViews, slotOffset, type View } from './web-views.js';

/** Whether the process still runs (a DR-site shop stopped by a failback leaves its state file). */
function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // gone
  }
}

/** The URL of the shop the front shows: the state file --upstream names, else --shop-state's. */
async function upstreamUrl(upstream: string, shopState: string): Promise<string | undefined> {
  const named = await readFile(upstream, 'utf8').then(
    (t) => t.trim(),
    () => '', // no choice made yet: the shop at the source
  );
  for (const file of named ? [named, shopState] : [shopState]) {
    const shop = await readFile(file, 'utf8').then(
      (t) => JSON.parse(t) as { url?: string; pid?: number },
      () => undefined, // that shop is not running (yet): try the next
    );
    if (shop?.url && (file === shopState || alive(shop.pid))) return shop.url;
  }
  return undefined;
}

async function lastOrder(url: string | undefined): Promise<{ id: number; item?: string } | null> {
  if (!url) return null;
  const res = await fetch(`${url}/orders/last`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) return null;
  const body = (await res.json()) as { order?: { id: number; item?: string } | null };
  return body.order ?? null;
}

async function main(): Promise<void> {
  const image = scriptArg('--image');
  const state = scriptArg('--state');
  const upstream = scriptArg('--upstream');
  const shopState = scriptArg('--shop-state');
  const rate = Number(scriptArg('--rate') ?? 2);
  if (!image || !state || !upstream || !shopState || !(rate > 0 && rate <= 100)) {
    process.stderr.write(
      'usage: web-front --image PATH --state FILE --upstream FILE --shop-state FILE [--rate VIEWS_PER_SECOND (1-100)]\n',
    );
    process.exit(2);
  }
  const { views } = readViews(await readFile(image));
  let last: View | undefined = views.at(-1);
  const data = heldData(() => open(image, 'r+'));
  let writing: Promise<unknown> = Promise.resolve();
  let shown: { id: number; item?: string } | null = null;
  let upstreamError: string | undefined;

  let rendering = false;
  /** One page view: ask the shop (outside the write chain, so a freeze never waits for it), record it. */
  const render = async () => {
    if (rendering) return; // the previous one still waits for the shop
    rendering = true;
    try {
      const url = await upstreamUrl(upstream, shopState);
      try {
        shown = await lastOrder(url);
        upstreamError = url ? undefined : 'no demo-shop to show';
      } catch (err) {
        upstreamError = `demo-shop at ${url} did not answer: ${String(err)}`;
      }
      const write = writing.then(async () => {
        const fh = data.current();
        if (!fh || service.frozen()) return; // fenced or frozen meanwhile: nothing written
        const view = { seq: (last?.seq ?? 0) + 1, timeMs: Date.now(), orderId: shown?.id ?? 0 };
        await fh.write(encodeView(view), 0, undefined, slotOffset(view.seq));
        await fh.datasync();
        last = view;
      });
      writing = write.catch((err: unknown) => {
        process.stderr.write(`demo-web: cannot record a view: ${String(err)}\n`);
      });
      await writing;
    } finally {
      rendering = false;
    }
  };

  const service = await DemoService.start({
    name: 'demo-web',
    state,
    rate,
    tick: render,
    writing: () => writing, // the view being written is durable before a freeze or fence
    openData: data.openData,
    closeData: data.closeData,
    fencedLine: 'fenced: volume closed, serving nothing',
    unfencedLine: 'serving again',
  });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://demo-web').pathname;
    if (req.method !== 'GET') return sendReply(res, 405, { error: 'GET only' });
    if (path === '/health') {
      if (service.fenced) return sendReply(res, 503, { ok: false, fenced: true });
      const url = await upstreamUrl(upstream, shopState);
      return sendReply(res, 200, { ok: true, views: last?.seq ?? 0, upstream: url ?? null });
    }
    if (service.fenced)
      return sendReply(res, 503, { error: 'fenced: demo-web runs at the DR site now' });
    if (path === '/views/last') {
      await writing;
      return sendReply(res, 200, { view: last ?? null });
    }
    if (path === '/') {
      const order = shown ? `order #${shown.id} (${shown.item ?? '?'})` : 'no order yet';
      const text = `<!doctype html><title>demo shop</title><h1>The demo shop</h1><p>Newest: ${order}</p><p>${last?.seq ?? 0} page views${upstreamError ? `; ${upstreamError}` : ''}</p>\n`;
      return sendReply(res, 200, text, 'text/html; charset=utf-8');
    }
    return sendReply(res, 404, { error: 'not found' });
  };
  await service.serve(
    handle,
    { image },
    (url) =>
      `demo-web serving at ${url} (views in ${image}, ${last?.seq ?? 0} so far${service.fenced ? '; fenced by a failover' : ''})`,
  );
}

await main();
