/** Reading requests: schema refusals and name checks are one-line 400s. */
import { describe, expect, it } from 'vitest';
import { httpStatusOf } from '../../../../replicator/gateway/http-status.js';
import { named, parseRequest } from '../../../../replicator/gateway/request-body.js';
import { sessionRequestSchema } from '../../../../replicator/transport/protocol.js';

const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
};

describe('request body', () => {
  it('names the field a request gets wrong, in one line, with the remedy', () => {
    const err = thrown(() =>
      parseRequest(
        sessionRequestSchema,
        { agentId: 'a', host: 'h', pid: 1 },
        'session request',
        'upgrade',
      ),
    ) as Error;
    expect(err.message).toMatch(/^session request refused: volumes: .*To resolve, upgrade$/);
    expect(err.message).not.toContain('\n');
    expect(httpStatusOf(err)).toBe(400);
  });

  it('checks names after decoding and refuses a bad one with 400', () => {
    expect(named('app', 'web', 'path')).toBe('web');
    for (const bad of ['../x', 'Web', 'a/b', 'web\0', '']) {
      const err = thrown(() => named('app', bad, 'path'));
      expect(httpStatusOf(err)).toBe(400);
      expect(err).toMatchObject({ code: 'bad_request' });
    }
  });
});
