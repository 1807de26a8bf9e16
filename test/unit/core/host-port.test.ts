import { describe, expect, it } from 'vitest';
import { formatHostPort, hostPortSchema, tryHostPort } from '../../../core/host-port.js';

describe('HOST:PORT', () => {
  it('splits IPv4, names and bracketed IPv6', () => {
    expect(tryHostPort('127.0.0.1:7443')).toEqual({ host: '127.0.0.1', port: 7443 });
    expect(tryHostPort('dr.example.com:443')).toEqual({ host: 'dr.example.com', port: 443 });
    expect(tryHostPort('[::1]:7443')).toEqual({ host: '::1', port: 7443 });
    expect(tryHostPort('[::ffff:10.0.0.1]:80')).toEqual({ host: '::ffff:10.0.0.1', port: 80 });
    expect(tryHostPort(' localhost:8787 ')).toEqual({ host: 'localhost', port: 8787 });
  });

  it('takes port 0 (pick a free one) unless a real port is needed, and nothing past 65535', () => {
    expect(tryHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(tryHostPort('127.0.0.1:0', 1)).toBeUndefined();
    expect(tryHostPort('127.0.0.1:65535')).toEqual({ host: '127.0.0.1', port: 65535 });
    expect(tryHostPort('127.0.0.1:65536')).toBeUndefined();
    expect(tryHostPort('127.0.0.1:123456')).toBeUndefined();
  });

  it('refuses a missing port, a bare IPv6 address, a URL and blanks', () => {
    for (const bad of [
      '127.0.0.1',
      '127.0.0.1:',
      ':7443',
      '::1:7443',
      '[::1]',
      'https://dr:7443',
      'a b:1',
      '',
    ])
      expect(tryHostPort(bad), bad).toBeUndefined();
  });

  it('writes IPv6 back in brackets', () => {
    expect(formatHostPort({ host: '::1', port: 7443 })).toBe('[::1]:7443');
    expect(formatHostPort({ host: '10.0.0.5', port: 7443 })).toBe('10.0.0.5:7443');
  });

  it('checks dr.yaml values the same way, keeping them as written', () => {
    expect(hostPortSchema.parse('[::1]:7443')).toBe('[::1]:7443');
    expect(hostPortSchema.safeParse('127.0.0.1:65536').success).toBe(false);
    expect(hostPortSchema.safeParse(' 127.0.0.1:1').success).toBe(false);
  });
});
