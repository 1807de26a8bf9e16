/** Every gateway refusal's HTTP status comes from one table by error code. */
import { describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { HttpError, httpStatusOf } from '../../../../replicator/gateway/http-status.js';

const err = (code: ConstructorParameters<typeof DrError>[1]['code']) =>
  new DrError('m', { code, remedy: 'r' });

describe('httpStatusOf', () => {
  it('maps codes to statuses', () => {
    expect(httpStatusOf(err('bad_request'))).toBe(400);
    expect(httpStatusOf(err('app_unknown'))).toBe(404);
    expect(httpStatusOf(err('point_unknown'))).toBe(404);
    for (const c of ['agent_conflict', 'session_lost', 'app_paused', 'app_failed_over'] as const)
      expect(httpStatusOf(err(c))).toBe(409);
    expect(httpStatusOf(err('gateway_full'))).toBe(507);
    expect(httpStatusOf(err('store_corrupt'))).toBe(500);
  });

  it('answers 422 to another refusal and 500 to anything not a DrError', () => {
    expect(httpStatusOf(err('volume_resized'))).toBe(422);
    expect(httpStatusOf(new Error('boom'))).toBe(500);
    expect(httpStatusOf('thrown string')).toBe(500);
  });

  it('lets an explicit status win and keeps code, message and remedy', () => {
    const e = new HttpError(404, err('bad_request'));
    expect(httpStatusOf(e)).toBe(404);
    expect(e.code).toBe('bad_request');
    expect(e.remedy).toBe('r');
    expect(e.message).toBe('m. To resolve, r');
  });
});
