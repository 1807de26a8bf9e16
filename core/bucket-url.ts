/** `s3://BUCKET[/PREFIX]`: where gateway.store names a bucket instead of a folder. */
import { DrError } from './errors.js';

/** Where the store lives: `s3://BUCKET[/PREFIX]`. */
export interface BucketLocation {
  bucket: string;
  /** Without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
}

/** Parses `s3://BUCKET[/PREFIX]`, or answers undefined for anything else (a local folder). */
export function parseBucketUrl(text: string): BucketLocation | undefined {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(text.trim());
  if (!m) return undefined;
  const bucket = m[1] as string;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new DrError(`store ${JSON.stringify(text)} names a bucket S3 does not allow`, {
      code: 'config_invalid',
      subject: text,
      remedy: 'bucket names are 3-63 characters of a-z, 0-9, dots and dashes',
    });
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((p) => p === '.' || p === '..')) {
    throw new DrError(`store ${JSON.stringify(text)} has a prefix with . or ..`, {
      code: 'config_invalid',
      subject: text,
      remedy: 'use a plain prefix such as s3://bucket/lifeboat',
    });
  }
  return { bucket, prefix };
}
