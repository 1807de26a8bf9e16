// What the Slack emulator's API families share: reading a request's body and arguments (form or
// JSON, as Slack's Web API takes both) and answering HTTP 200 with Slack's `{ ok, … }` body.
import type { IncomingMessage } from 'node:http';

/** An answer of the emulator: HTTP status and JSON body. */
export type Answer = { status: number; body: unknown };

export function ok(body: unknown): Answer {
  return { status: 200, body };
}

/** A non-empty string argument, or undefined. */
export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The `blocks` argument: a JSON string (form requests) or an array (JSON requests). */
export function blocksOf(v: unknown): Record<string, unknown>[] {
  if (typeof v === 'string') return JSON.parse(v) as Record<string, unknown>[];
  return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
}

export function parseArgs(contentType: string, raw: string): Record<string, unknown> {
  if (contentType.startsWith('application/json'))
    return raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
  return Object.fromEntries(new URLSearchParams(raw));
}

export async function readBody(req: IncomingMessage): Promise<string> {
  return (await readBytes(req)).toString('utf8');
}

export async function readBytes(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
