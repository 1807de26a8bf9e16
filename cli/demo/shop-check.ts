// demo-shop's health check for a recovered copy, run by the local provider with DR_VOLUME_DATA
// naming the recovered image: `node shop-check.js --state STATE_FILE --kind ext4|file`.
// It takes the database out of the image (ext4: with debugfs, no mount needed; file: the image
// is the database), runs SQLite's integrity_check, checks the orders are 1..N with no gap, and
// compares the last recovered order with the live service: same order in both, and how many
// seconds of orders the copy is missing (the data-loss window). Exit 0 when the copy is sound.
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { exists, scriptArg } from './script-arg.js';
import { type Order, orderFromRow } from './shop-order.js';

const run = promisify(execFile);

const same = (a: Order, b: Order) =>
  a.id === b.id &&
  a.item === b.item &&
  a.qty === b.qty &&
  a.cents === b.cents &&
  a.createdMs === b.createdMs;

const time = (ms: number) => new Date(ms).toISOString().slice(11, 23);

async function source(stateFile: string, id: number) {
  const { url } = JSON.parse(await readFile(stateFile, 'utf8')) as { url: string };
  const get = async (path: string) => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { order?: Order | null };
  };
  return {
    last: (await get('/orders/last')).order ?? undefined,
    same: (await get(`/orders/${id}`)).order ?? undefined,
  };
}

async function main(): Promise<number> {
  const image = process.env.DR_VOLUME_DATA;
  const stateFile = scriptArg('--state');
  const kind = scriptArg('--kind');
  if (!image || !stateFile || (kind !== 'ext4' && kind !== 'file')) {
    process.stderr.write(
      'usage: DR_VOLUME_DATA=IMAGE shop-check --state STATE_FILE --kind ext4|file\n',
    );
    return 2;
  }
  // After a failover demo-shop runs at the DR site on the recovered volume: ask it.
  if (process.env.DR_MODE === 'failover') return drServer(join(dirname(image), 'shop-dr.json'));
  const dir = await mkdtemp(join(tmpdir(), 'demo-shop-check-'));
  const lines: string[] = [];
  try {
    const db = join(dir, 'shop.db');
    if (kind === 'ext4') {
      // A frozen cut may hold a hot rollback journal: take it too, so SQLite rolls it back.
      for (const name of ['shop.db', 'shop.db-journal']) {
        await run('debugfs', ['-R', `dump /${name} ${join(dir, name)}`, image], {
          timeout: 60_000,
        });
      }
      if (!(await exists(db))) {
        lines.push(`no /shop.db in the recovered file system (${image})`);
        return 1;
      }
      if (await exists(`${db}-journal`))
        lines.push('hot journal found: SQLite rolls back the unfinished transaction');
    } else {
      await copyFile(image, db);
    }
    const integrity = (
      await run('sqlite3', ['-batch', db, 'PRAGMA integrity_check;'], { timeout: 60_000 })
    ).stdout.trim();
    lines.push(`integrity_check: ${integrity}`);
    if (integrity !== 'ok') return 1;
    const rows = (
      await run(
        'sqlite3',
        [
          '-batch',
          db,
          'SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM orders; SELECT id, item, qty, cents, created_ms FROM orders ORDER BY id DESC LIMIT 1;',
        ],
        { timeout: 60_000 },
      )
    ).stdout
      .trim()
      .split('\n');
    const [count, min, max] = (rows[0] ?? '0|0|0').split('|').map(Number);
    const last = orderFromRow(rows[1]) ?? undefined;
    if (!last || count === 0) {
      lines.unshift('integrity ok; the recovered copy holds no orders yet');
      return 0;
    }
    const gapless = min === 1 && max === count;
    lines.push(
      `recovered: ${count} orders, ids ${min}-${max}${gapless ? ', no gaps' : ' WITH GAPS'}; last #${last.id} at ${time(last.createdMs)}`,
    );
    if (!gapless) {
      lines.unshift(`the recovered orders have gaps: ${count} orders with ids ${min}-${max}`);
      return 1;
    }
    const live = await source(stateFile, last.id).catch((err: unknown) => {
      lines.push(`source: the live demo-shop did not answer (${String(err)}); nothing compared`);
      return undefined;
    });
    if (!live?.last) {
      lines.unshift(`integrity ok; orders 1-${last.id} recovered; the source was not compared`);
      return 0;
    }
    if (!live.same || !same(live.same, last)) {
      lines.unshift(`order #${last.id} differs between the recovered copy and the source`);
      return 1;
    }
    const behind = live.last.id - last.id;
    const windowS = Math.max(0, (live.last.createdMs - last.createdMs) / 1000);
    // The first line is the one-line result `dr drill --wait` shows; the rest is the detail.
    lines.unshift(
      `integrity ok; orders 1-${last.id} recovered, #${last.id} identical to the source's; data-loss window ${windowS.toFixed(1)} s (${behind} newer order${behind === 1 ? '' : 's'} at the source)`,
    );
    lines.push(
      `source: last #${live.last.id} at ${time(live.last.createdMs)}; order #${last.id} identical in both`,
    );
    lines.push(
      `data-loss window: ${windowS.toFixed(1)} s (${behind} order${behind === 1 ? '' : 's'} newer than the copy)`,
    );
    return 0;
  } finally {
    for (const line of lines) console.log(line);
    await rm(dir, { recursive: true, force: true });
  }
}

/** The DR site's demo-shop: it answers, its database is intact, its orders have no gap. */
async function drServer(stateFile: string): Promise<number> {
  const state = await readFile(stateFile, 'utf8').then(
    (t) => JSON.parse(t) as { url: string; db: string },
    () => undefined, // not written yet: it is still starting
  );
  if (!state) {
    console.log(`demo-shop has not started at the DR site yet (${stateFile})`);
    return 1;
  }
  const res = await fetch(`${state.url}/integrity`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as {
    integrity?: string;
    count?: number;
    min?: number;
    max?: number;
  };
  const gapless = body.count === 0 || (body.min === 1 && body.max === body.count);
  if (body.integrity !== 'ok' || !gapless) {
    console.log(
      `demo-shop at the DR site: integrity ${body.integrity}; ${body.count} orders, ids ${body.min}-${body.max}`,
    );
    return 1;
  }
  console.log(
    `integrity ok; demo-shop takes orders at the DR site (${state.url}): orders 1-${body.max}, no gaps`,
  );
  return 0;
}

process.exitCode = await main().catch((err: unknown) => {
  console.log(`demo-shop check: ${String(err)}`);
  return 1;
});
