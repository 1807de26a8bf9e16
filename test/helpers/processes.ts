import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/dr.js', import.meta.url));
const children = new Set<ChildProcess>();

export interface DrProcess {
  child: ChildProcess;
  output: () => string;
  /** Waits until the combined output matches, or fails after `ms`. */
  waitFor: (re: RegExp, ms?: number) => Promise<void>;
  exited: Promise<number | null>;
  kill9: () => Promise<void>;
  stop: () => Promise<number | null>;
  /** Writes a line to its standard input (started with `{ input: true }`). */
  type: (line: string) => void;
}

/** Starts `dr …` as a real process (the compiled CLI); `stopAll` ends every one left. */
export function startDr(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  o: { input?: boolean } = {},
): DrProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, DR_LOG_LEVEL: 'info', ...env },
    stdio: [o.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let text = '';
  child.stdout?.on('data', (c: Buffer) => {
    text += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  return {
    child,
    output: () => text,
    exited,
    waitFor: async (re, ms = 20_000) => {
      const until = Date.now() + ms;
      while (!re.test(text)) {
        if (Date.now() > until)
          throw new Error(`timed out waiting for ${re} in:\n${text.slice(-3000)}`);
        if (child.exitCode !== null)
          throw new Error(
            `dr ${args.join(' ')} exited ${child.exitCode} before ${re}:\n${text.slice(-3000)}`,
          );
        await sleep(50);
      }
    },
    type: (line) => {
      if (!child.stdin) throw new Error(`dr ${args.join(' ')} was started without { input: true }`);
      child.stdin.write(`${line}\n`);
    },
    kill9: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Kills every `dr` process still running and waits (up to 10 s each) until each has exited. */
export async function stopAll(): Promise<void> {
  const left = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    left.map(
      (c) =>
        new Promise<void>((done) => {
          const timer = setTimeout(done, 10_000);
          c.once('exit', () => {
            clearTimeout(timer);
            done();
          });
          c.kill('SIGKILL');
        }),
    ),
  );
  children.clear();
}

/** Whether process `pid` still exists (signal 0 only checks). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // ESRCH: it has exited
  }
}
