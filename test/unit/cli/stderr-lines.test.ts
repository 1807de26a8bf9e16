// Log lines to standard error never throw: a full pipe is waited out a while, then lines drop.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stderrWriter } from '../../../cli/stderr-lines.js';

const eagain = () =>
  Object.assign(new Error('EAGAIN: resource temporarily unavailable'), { code: 'EAGAIN' });

/** A pipe in memory: `full` makes writes fail with EAGAIN; `take` bytes per write at most. */
function fakePipe(take = Number.POSITIVE_INFINITY) {
  const pipe = { full: false, out: '', slept: 0 };
  return {
    pipe,
    options: {
      write: (_fd: number, buf: Buffer, offset: number) => {
        if (pipe.full) throw eagain();
        const n = Math.min(take, buf.length - offset);
        pipe.out += buf.subarray(offset, offset + n).toString();
        return n;
      },
      sleep: (ms: number) => {
        pipe.slept += ms;
      },
      waitMs: 100,
    },
  };
}

describe('stderrWriter', () => {
  it('writes a line whole across partial writes, and waits out a pipe that is full for a moment', () => {
    const { pipe, options } = fakePipe(3);
    let fails = 2;
    const line = stderrWriter({
      ...options,
      write: (fd, buf, offset) => {
        if (fails-- > 0) throw eagain();
        return options.write(fd, buf, offset);
      },
    });
    line('one line\n');
    expect(pipe.out).toBe('one line\n');
    expect(pipe.slept).toBe(20);
  });

  it('drops lines while the pipe stays full, waiting only for the first, and says how many once it drains', () => {
    const { pipe, options } = fakePipe();
    const line = stderrWriter(options);
    pipe.full = true;
    line('a\n');
    expect(pipe.slept).toBe(100); // waited its 100 ms, then gave up
    line('b\n');
    line('c\n');
    expect(pipe.slept).toBe(100); // the stuck reader is not waited for again
    pipe.full = false;
    line('d\n');
    line('e\n');
    expect(pipe.out).toBe('(3 log lines dropped: standard error was not being read)\nd\ne\n');
  });

  it('drops a line nobody can read (EPIPE) without throwing', () => {
    const line = stderrWriter({
      write: () => {
        throw Object.assign(new Error('EPIPE'), { code: 'EPIPE' });
      },
      sleep: () => {
        throw new Error('no wait for a closed pipe');
      },
    });
    expect(() => line('lost\n')).not.toThrow();
  });

  it('keeps a process alive that logs into a pipe its reader stopped reading', async () => {
    // Before: fs.writeSync(2) threw EAGAIN from a log call and the process ended with code 1.
    const module = resolve(import.meta.dirname, '../../../dist/cli/stderr-lines.js');
    const script = `
      const { stderrWriter } = await import(${JSON.stringify(module)});
      process.stderr.write('start\\n'); // Node opens fd 2 as a stream: non-blocking from here
      const line = stderrWriter({ waitMs: 20 });
      for (let i = 0; i < 400; i++) line('x'.repeat(1000) + '\\n');
      process.stdout.write('done');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    // Nothing reads its standard error past the first chunk: the pipe (64 KiB) fills.
    child.stderr.once('data', () => child.stderr.pause());
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    child.stderr.destroy();
    expect(code).toBe(0);
    expect(out).toBe('done');
  }, 60_000);
});
