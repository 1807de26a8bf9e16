/** Where a `dr` process logs: pretty lines on a terminal, JSON lines elsewhere, a file for background parts. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { readEnv } from '../core/env.js';
import { stderrWriter } from './stderr-lines.js';

export type LogFormat = 'json' | 'pretty';

export interface CliLogOptions {
  level: string;
  env: NodeJS.ProcessEnv;
  /** Standard error is a terminal (a person reads it). */
  tty: boolean;
  /**
   * A long-running part (gateway, agent, worker, serve, warm) and its log file's name: on a
   * terminal its log goes to `logsDir/<file>.log` in full, and the terminal gets warnings only,
   * so a part started with `&` never writes into the next command's output.
   */
  background?: { file: string; logsDir: string };
  /** Where standard error lines go (tests); fd 2 by default. */
  write?: (line: string) => void;
}

export interface CliLog {
  log: Logger;
  /** The file the full log goes to, when it goes to one. */
  file?: string;
}

/** DR_LOG_FORMAT, checked; unset: pretty on a terminal, JSON otherwise. */
export function logFormatOf(env: NodeJS.ProcessEnv, tty: boolean): LogFormat {
  return readEnv('DR_LOG_FORMAT', env) ?? (tty ? 'pretty' : 'json');
}

/** The logger of one `dr` process (see `CliLogOptions`). */
export function createCliLog(o: CliLogOptions): CliLog {
  const format = logFormatOf(o.env, o.tty);
  const toStderr = o.write ?? stderrWriter();
  const terminal = format === 'pretty' ? prettyStream(toStderr) : lineStream(toStderr);
  const base = { name: 'dr', level: o.level, base: { pid: process.pid } };
  const chosen = readEnv('DR_LOG_FILE', o.env);
  const file =
    chosen ||
    (o.background && o.tty ? join(o.background.logsDir, `${o.background.file}.log`) : undefined);
  if (!file) return { log: pino(base, terminal) };
  if (!chosen) mkdirSync(o.background?.logsDir ?? '.', { recursive: true, mode: 0o700 });
  const streams: pino.StreamEntry[] = [
    {
      level: o.level as pino.Level,
      stream: pino.destination({ dest: file, sync: true, append: true, mkdir: true }),
    },
  ];
  // The terminal keeps what needs a person: warnings and errors.
  if (o.level !== 'silent') streams.push({ level: 'warn', stream: terminal });
  return {
    log: pino(base, pino.multistream(streams, { dedupe: false })),
    file,
  };
}

/** JSON lines, as pino writes them. */
function lineStream(write: (line: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      write(chunk.toString());
      done();
    },
  });
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'part']);

/** Human lines: `01:02:03 warn  gateway: request refused (status=404 url=/v1/…)`. */
function prettyStream(write: (line: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) write(`${prettyLine(line)}\n`);
      done();
    },
  });
}

/** One pino JSON line as a human line; a line that is not JSON stays as it is. */
export function prettyLine(json: string): string {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json; // not a log record: shown as written
  }
  const time = typeof j.time === 'number' ? new Date(j.time).toTimeString().slice(0, 8) : '';
  const level = (LEVEL_NAMES[Number(j.level)] ?? 'info').padEnd(5);
  const part = typeof j.part === 'string' ? `${j.part}: ` : '';
  const fields = Object.entries(j)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${fieldText(v)}`)
    .join(' ');
  return `${time} ${level} ${part}${String(j.msg ?? '')}${fields ? ` (${fields})` : ''}`;
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return v.includes(' ') ? JSON.stringify(v) : v;
  if (v !== null && typeof v === 'object' && 'message' in v)
    return JSON.stringify((v as { message: unknown }).message);
  return JSON.stringify(v);
}
