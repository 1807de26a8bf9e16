// demo-web's health check for a recovered copy, run by the local provider with DR_VOLUME_DATA
// naming the recovered image: `node web-check.js --state STATE_FILE`. Every slot of the image must
// be empty or a page view whose digest holds, and the views one unbroken run; the newest is
// compared with the live web front (the data-loss window). After a failover it asks the web front
// running at the DR site instead. Exit 0 when the copy is sound.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { scriptArg } from './script-arg.js';
import { readViews, unbroken, type View } from './web-views.js';

const time = (ms: number) => new Date(ms).toISOString().slice(11, 23);

async function get<T>(stateFile: string, path: string): Promise<T> {
  const { url } = JSON.parse(await readFile(stateFile, 'utf8')) as { url: string };
  const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
  return (await res.json()) as T;
}

async function main(): Promise<number> {
  const image = process.env.DR_VOLUME_DATA;
  const stateFile = scriptArg('--state');
  if (!image || !stateFile) {
    process.stderr.write('usage: DR_VOLUME_DATA=IMAGE web-check --state STATE_FILE\n');
    return 2;
  }
  if (process.env.DR_MODE === 'failover') {
    const dr = join(dirname(image), 'web-dr.json');
    const health = await get<{ ok?: boolean; views?: number; upstream?: string | null }>(
      dr,
      '/health',
    ).catch(() => undefined); // not started yet, or not answering: said below
    if (!health?.ok) {
      console.log(`demo-web does not answer at the DR site yet (${dr})`);
      return 1;
    }
    console.log(
      `demo-web serves at the DR site: ${health.views} page views; it shows the demo-shop at ${health.upstream ?? '(none yet)'}`,
    );
    return 0;
  }
  const { views, bad } = readViews(await readFile(image));
  if (bad.length) {
    console.log(
      `${bad.length} slot(s) of the recovered image are neither empty nor a sound page view (first: slot ${bad[0]})`,
    );
    return 1;
  }
  const newest = views.at(-1);
  if (!newest) {
    console.log('the recovered copy holds no page views yet');
    return 0;
  }
  if (!unbroken(views)) {
    console.log(`the recovered page views are not one unbroken run (${views.length} views)`);
    return 1;
  }
  const live = await get<{ view?: View | null }>(stateFile, '/views/last').catch(
    () => undefined, // the source is not answering: nothing to compare
  );
  const first = views[0]?.seq ?? newest.seq;
  if (!live?.view) {
    console.log(
      `page views ${first}-${newest.seq} recovered, all sound; the live web front was not compared`,
    );
    return 0;
  }
  if (live.view.seq < newest.seq) {
    console.log(
      `the recovered copy has view #${newest.seq}, newer than the live web front's #${live.view.seq}`,
    );
    return 1;
  }
  const windowS = Math.max(0, (live.view.timeMs - newest.timeMs) / 1000);
  console.log(
    `page views ${first}-${newest.seq} recovered, all sound; data-loss window ${windowS.toFixed(1)} s (${live.view.seq - newest.seq} newer view(s) at the source)`,
  );
  console.log(`newest recovered view #${newest.seq} at ${time(newest.timeMs)}`);
  return 0;
}

process.exitCode = await main().catch((err: unknown) => {
  console.log(`demo-web check: ${String(err)}`);
  return 1;
});
