// demo-shop: a small order service on SQLite, run by `dr up --demo`. Usage:
//   node shop-service.js --db PATH --state FILE [--rate ORDERS_PER_SECOND]
// It keeps its database open through the system's `sqlite3` shell, writes orders at a steady rate
// (the workload), and answers on a loopback HTTP port it writes to --state:
//   GET /health, GET /orders/last, GET /orders/<id>, POST /orders (one order now),
//   POST /freeze (finish the order being written, then write nothing), POST /thaw (write again).
// The quiesce hook (a shell script, cheap to run twice a cut) freezes with SIGUSR2 and thaws with
// SIGUSR1: the service writes its pid to STATE.pid and holds STATE.frozen while frozen. A freeze
// also ends by itself after 30 s.
// Fencing (failover) and unfencing (failback): SIGHUP with STATE.fence present makes the service
// finish the order in flight, close its database and stop taking orders (it holds STATE.down
// while so); SIGHUP without STATE.fence opens the database again and takes orders again.
// GET /integrity runs SQLite's integrity_check and counts the orders.
// Only Node's own modules (and its siblings here): it starts fast and stays small.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { scriptArg } from './script-arg.js';
import { DemoService, heldData, sendReply } from './service-life.js';
import { type Order, orderFromRow } from './shop-order.js';

export type { Order } from './shop-order.js';

const ITEMS = ['lifejacket', 'paddle', 'flare', 'rope', 'compass', 'whistle', 'lantern', 'bucket'];

/** One `sqlite3` shell fed statements on stdin; each statement answers with one line. */
class Sqlite {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<{ resolve: (rows: string[]) => void; rows: string[] }> = [];
  private buffer = '';
  private errors = '';

  constructor(db: string) {
    this.proc = spawn('sqlite3', ['-batch', '-bail', db], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (c: Buffer) => this.onData(c.toString()));
    this.proc.stderr.on('data', (c: Buffer) => {
      this.errors += c.toString();
      process.stderr.write(`sqlite3: ${c}`);
    });
    this.proc.on('exit', (code) => {
      process.stderr.write(`demo-shop: sqlite3 exited with code ${code}: ${this.errors.trim()}\n`);
      process.exit(1);
    });
    this.proc.on('error', (err) => {
      process.stderr.write(
        `demo-shop: cannot run sqlite3 (${err.message}); install it with apt-get install -y sqlite3\n`,
      );
      process.exit(1);
    });
  }

  private onData(text: string): void {
    this.buffer += text;
    let nl = this.buffer.indexOf('\n');
    while (nl >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      const w = this.waiting[0];
      if (w) {
        if (line === '__done__') {
          this.waiting.shift();
          w.resolve(w.rows);
        } else {
          w.rows.push(line);
        }
      }
      nl = this.buffer.indexOf('\n');
    }
  }

  /** Runs SQL; resolves with the result rows (`|`-separated) once sqlite3 has finished it. */
  run(sql: string): Promise<string[]> {
    return new Promise((resolve) => {
      this.waiting.push({ resolve, rows: [] });
      this.proc.stdin.write(`${sql}\nSELECT '__done__';\n`);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.proc.removeAllListeners('exit');
      this.proc.once('exit', () => resolve());
      this.proc.stdin.end('.quit\n');
    });
  }
}

async function main(): Promise<void> {
  const db = scriptArg('--db');
  const state = scriptArg('--state');
  const rate = Number(scriptArg('--rate') ?? 5);
  if (!db || !state || !(rate > 0 && rate <= 1000)) {
    process.stderr.write(
      'usage: shop-service --db PATH --state FILE [--rate ORDERS_PER_SECOND (1-1000)]\n',
    );
    process.exit(2);
  }
  const openDb = async () => {
    const opened = new Sqlite(db);
    // Rollback journal (not WAL): once a transaction commits, the database file alone holds it.
    await opened.run(
      'PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, cents INTEGER NOT NULL, created_ms INTEGER NOT NULL);',
    );
    return opened;
  };
  /** Fenced: the database is closed (its volume may be unmounted); nothing is read or written. */
  const data = heldData(openDb);
  const dbNow = (): Sqlite => {
    const sql = data.current();
    if (!sql) throw new Error('fenced: the database is closed');
    return sql;
  };
  const columns = 'id, item, qty, cents, created_ms';
  let writing: Promise<unknown> = Promise.resolve();
  let placed = 0;

  const place = (): Promise<Order | null> => {
    const item = ITEMS[randomInt(ITEMS.length)] ?? 'rope';
    const run = writing.then(() =>
      dbNow().run(
        `INSERT INTO orders (item, qty, cents, created_ms) VALUES ('${item}', ${randomInt(1, 5)}, ${randomInt(199, 9999)}, ${Date.now()}); SELECT ${columns} FROM orders WHERE id = last_insert_rowid();`,
      ),
    );
    writing = run;
    return run.then((rows) => {
      placed += 1;
      return orderFromRow(rows[0]);
    });
  };

  const service = await DemoService.start({
    name: 'demo-shop',
    state,
    rate,
    tick: place,
    writing: () => writing, // the order being written is committed before a freeze or fence
    openData: data.openData,
    closeData: data.closeData,
    fencedLine: 'fenced: database closed, taking no orders',
    unfencedLine: `taking orders again (database ${db})`,
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://demo-shop');
    const one = /^\/orders\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && url.pathname === '/health') {
      if (service.fenced) return sendReply(res, 503, { ok: false, fenced: true, placed });
      return sendReply(res, 200, { ok: true, placed, frozen: service.frozen() });
    }
    if (service.fenced)
      return sendReply(res, 503, { error: 'fenced: demo-shop runs at the DR site now' });
    if (req.method === 'GET' && url.pathname === '/integrity') {
      await writing;
      const [check] = await dbNow().run('PRAGMA integrity_check;');
      const [counts] = await dbNow().run(
        'SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) FROM orders;',
      );
      const [count, min, max] = (counts ?? '0|0|0').split('|').map(Number);
      return sendReply(res, 200, { integrity: check, count, min, max });
    }
    if (req.method === 'GET' && url.pathname === '/orders/last') {
      await writing;
      const rows = await dbNow().run(`SELECT ${columns} FROM orders ORDER BY id DESC LIMIT 1;`);
      return sendReply(res, 200, { order: orderFromRow(rows[0]), at: Date.now() });
    }
    if (req.method === 'GET' && one) {
      const rows = await dbNow().run(`SELECT ${columns} FROM orders WHERE id = ${Number(one[1])};`);
      const order = orderFromRow(rows[0]);
      return sendReply(res, order ? 200 : 404, order ? { order } : { error: 'no such order' });
    }
    if (req.method === 'POST' && url.pathname === '/orders') {
      if (service.frozen()) return sendReply(res, 503, { error: 'frozen for a recovery point' });
      return sendReply(res, 201, { order: await place() });
    }
    if (req.method === 'POST' && url.pathname === '/freeze') {
      await service.freeze();
      return sendReply(res, 200, { frozen: true });
    }
    if (req.method === 'POST' && url.pathname === '/thaw') {
      await service.thaw();
      return sendReply(res, 200, { frozen: false });
    }
    return sendReply(res, 404, { error: 'not found' });
  };
  await service.serve(handle, { db }, (url) =>
    service.fenced
      ? `demo-shop taking orders at ${url} once unfenced (it was fenced by a failover; database ${db} stays closed until failback)`
      : `demo-shop taking orders at ${url} (database ${db}, ${rate}/s)`,
  );
}

await main();
