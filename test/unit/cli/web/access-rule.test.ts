import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  accessRuleFrom,
  checkAccess,
  isLoopbackHost,
  TOKEN_COOKIE,
} from '../../../../cli/web/access-rule.js';

/** A request as node:http hands it over: peer address, headers and URL. */
const request = (remoteAddress: string, headers: Record<string, string> = {}, url = '/') =>
  ({ socket: { remoteAddress }, headers, url }) as unknown as IncomingMessage;

describe('who may read the status page and the metrics', () => {
  const token = randomBytes(24).toString('hex');

  it('serves loopback peers, IPv4, IPv6 and IPv4-mapped', () => {
    for (const a of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1'])
      expect(checkAccess(request(a), {}).ok).toBe(true);
  });

  it('refuses remote peers when no token is set, saying how to allow them', () => {
    const v = checkAccess(request('10.1.2.3'), {});
    expect(v).toMatchObject({ ok: false, status: 403 });
    expect(!v.ok && v.message).toContain('DR_STATUS_TOKEN');
  });

  it('lets remote peers in with the token as bearer, cookie or query', () => {
    const rule = { token };
    expect(checkAccess(request('10.1.2.3', { authorization: `Bearer ${token}` }), rule).ok).toBe(
      true,
    );
    expect(
      checkAccess(request('10.1.2.3', { cookie: `a=b; ${TOKEN_COOKIE}=${token}` }), rule).ok,
    ).toBe(true);
    expect(checkAccess(request('10.1.2.3', {}, `/?token=${token}`), rule).ok).toBe(true);
  });

  it('refuses a wrong or missing token with 401, without echoing it', () => {
    const rule = { token };
    for (const headers of [{}, { authorization: 'Bearer nope-nope-nope-nope' }]) {
      const v = checkAccess(request('192.168.0.9', headers), rule);
      expect(v).toMatchObject({ ok: false, status: 401 });
      expect(!v.ok && v.message).not.toContain(token);
      expect(!v.ok && v.message).not.toContain('nope');
    }
  });

  it('reads the token from DR_STATUS_TOKEN and refuses a short one', () => {
    expect(accessRuleFrom({})).toEqual({});
    expect(accessRuleFrom({ DR_STATUS_TOKEN: token })).toEqual({ token });
    expect(() => accessRuleFrom({ DR_STATUS_TOKEN: 'abc' })).toThrow(/shorter than 16/);
  });

  it('tells loopback listen hosts from the others', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
  });
});
