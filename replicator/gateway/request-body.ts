/** Reading a gateway request: its body (whole or refused), its JSON through a protocol schema, its names through core/names. */
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { DrError, isDrError } from '../../core/errors.js';
import { checkName, type NameKind, type NameOf } from '../../core/names.js';
import { HttpError } from './http-status.js';

export const badRequest = (message: string, remedy: string) =>
  new DrError(message, { code: 'bad_request', remedy });

/** A request body through its protocol schema; the first problem is a one-line 400. */
export function parseRequest<S extends z.ZodType>(
  schema: S,
  body: unknown,
  what: string,
  remedy: string,
): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw badRequest(
    `${what} refused: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
    remedy,
  );
}

/** An identifier from a request, after decoding, through the one check in core/names (400 if bad). */
export function named<K extends NameKind>(kind: K, value: unknown, where: string): NameOf<K> {
  try {
    return checkName(kind, value, where);
  } catch (err) {
    if (isDrError(err)) throw new HttpError(400, err);
    throw err;
  }
}

/**
 * Reads a whole body as the chunks it arrived in (a batch is written to disk
 * from them without a copy); a body cut off mid-upload rejects, so a partial
 * batch is never applied.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (declared > limit) {
      reject(
        badRequest(
          `body of ${declared} bytes exceeds the limit of ${limit}`,
          'lower agent.batchSize in dr.yaml',
        ),
      );
      req.resume();
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) req.destroy(new Error('body too large'));
      else parts.push(c);
    });
    req.on('end', () => {
      if (!req.complete || (Number.isFinite(declared) && size !== declared)) {
        reject(badRequest('request body was cut off', 'the agent resends it; nothing was stored'));
      } else resolve(parts);
    });
    req.on('error', reject);
    req.on('aborted', () =>
      reject(badRequest('request body was cut off', 'the agent resends it; nothing was stored')),
    );
  });
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = Buffer.concat(await readBody(req, 4 * 1024 * 1024));
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw badRequest('request body is not JSON', 'send application/json');
  }
}
