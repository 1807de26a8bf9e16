import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkRecordPrefix } from '../helpers/records.js';
import { changedBytes, checkOneInstant } from './point-checks.js';

const writer = fileURLToPath(new URL('../fixtures/record-pair-writer.mjs', import.meta.url));

/** Runs the pair writer until it has written `n` records to the second file, then ends it as told. */
async function runWriter(a: string, b: string, n: number, crash: boolean): Promise<string> {
  const child = spawn(process.execPath, [writer, a, b, '500'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise((r) => child.once('exit', r));
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const size = await readFile(b).then(
      (d) => d.length,
      () => 0,
    );
    if (size >= n * 4096 || child.exitCode !== null) break;
    await sleep(20);
  }
  child.kill(crash ? 'SIGKILL' : 'SIGTERM');
  await exited;
  return out.trim();
}

describe('chaos checks', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-chaos-checks-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the pair writer resumes after kill -9 and a torn record, leaving gap-free files in step', async () => {
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    await runWriter(a, b, 20, true);
    // A torn record at the end of the first file, as a crash mid-write would leave.
    const fh = await open(a, 'a');
    await fh.write(Buffer.alloc(1000, 7));
    await fh.close();
    const said = await runWriter(a, b, 40, false);
    const [na, nb] = said.split(' ').map(Number);
    expect(checkRecordPrefix(await readFile(a))).toBe(na);
    expect(checkRecordPrefix(await readFile(b))).toBe(nb);
    expect(na).toBe(nb);
    expect(nb).toBeGreaterThanOrEqual(40);
  });

  it('the pair writer refuses files that are not in step, saying how many each holds', async () => {
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    await writeFile(a, '');
    await writeFile(b, Buffer.alloc(4096 * 2));
    const child = spawn(process.execPath, [writer, a, b, '500'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(err.trim()).toBe('record-pair-writer: files hold 0 and 2 records');
  });

  it('a cut that is not one instant across the two volumes is named', () => {
    expect(() => checkOneInstant(4, ['alpha', 'beta'], [10, 10])).not.toThrow();
    expect(() => checkOneInstant(4, ['alpha', 'beta'], [11, 10])).not.toThrow();
    expect(() => checkOneInstant(4, ['alpha', 'beta'], [12, 10])).toThrow(
      'point 4 is not one instant across volumes: alpha holds 12 records, beta holds 10',
    );
    expect(() => checkOneInstant(5, ['alpha', 'beta'], [9, 10])).toThrow(
      /alpha holds 9 records, beta holds 10/,
    );
  });

  it('counts changed bytes in whole blocks', async () => {
    const x = join(dir, 'x.img');
    const y = join(dir, 'y.img');
    const data = Buffer.alloc(1024 * 1024, 1);
    await writeFile(x, data);
    data[5] = 9; // block 0
    data[65536 * 3 + 100] = 9; // block 3
    data[65536 * 3 + 200] = 9; // block 3 again
    await writeFile(y, data);
    expect(await changedBytes(x, y, 65536)).toBe(2 * 65536);
    expect(await changedBytes(x, x, 65536)).toBe(0);
  });
});
