import { describe, expect, it } from 'vitest';
import { parseBucketUrl } from '../../../core/bucket-url.js';

describe('parseBucketUrl', () => {
  it('reads a bucket and an optional prefix', () => {
    expect(parseBucketUrl('s3://lifeboat-dr')).toEqual({ bucket: 'lifeboat-dr', prefix: '' });
    expect(parseBucketUrl('s3://lifeboat-dr/site/a/')).toEqual({
      bucket: 'lifeboat-dr',
      prefix: 'site/a',
    });
  });

  it('answers undefined for a folder (the local store)', () => {
    expect(parseBucketUrl('store')).toBeUndefined();
    expect(parseBucketUrl('/var/lib/lifeboat')).toBeUndefined();
  });

  it('refuses a bucket name S3 does not allow, and . or .. in the prefix, saying the remedy', () => {
    expect(() => parseBucketUrl('s3://Bad_Bucket')).toThrow(/3-63 characters/);
    expect(() => parseBucketUrl('s3://ok-bucket/a/../b')).toThrow(/plain prefix/);
  });
});
