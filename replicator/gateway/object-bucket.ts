/** A bucket (or a prefix in one) over the S3 API: the few calls the object store makes, with errors as DrError. */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { BucketLocation } from '../../core/bucket-url.js';
import { DrError, errorMessage } from '../../core/errors.js';
import { Semaphore } from './async-lock.js';

export interface ObjectBucketOptions extends BucketLocation {
  /** The S3 endpoint (RGW, OSS, MinIO); the SDK's default (AWS) when absent. */
  endpoint?: string | undefined;
  region?: string | undefined;
  /** Objects up to this size go up in one PUT; larger ones as multipart uploads of `partBytes` parts. */
  partBytes?: number;
  /** PUT and part requests in flight at once, over every object (default 4). */
  requestsAtOnce?: number;
}

/**
 * Whether a body's SHA-256 goes into the request's signature. The SDK hashes every buffer it
 * sends by default and the endpoint hashes it again to compare: about a third of the object
 * store's CPU on a single-machine Ceph (docs/benchmarks.md). The body goes as UNSIGNED-PAYLOAD
 * only where nothing is lost and the endpoint is known to take it: a loopback address (the bytes
 * never leave the machine; Ceph RGW tested) and AWS's own endpoints over HTTPS (TLS authenticates
 * every byte). Any other endpoint keeps the hash: over plain HTTP it is what refuses a body
 * altered on the way, and an S3-compatible service may demand it (Alibaba OSS's S3 API describes
 * the content's SHA-256 for PUT).
 */
export function signsPayload(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return false; // the SDK's own AWS endpoints, HTTPS
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return true; // the SDK refuses it anyway; signing is the safe answer
  }
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)) return false;
  const aws = host === 'amazonaws.com' || host.endsWith('.amazonaws.com');
  return !(url.protocol === 'https:' && aws);
}

/** The commands whose body is segment or point bytes. */
const BODY_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

function failed(what: string, key: string, err: unknown): DrError {
  return new DrError(`object store: ${what} ${key} failed: ${errorMessage(err)}`, {
    code: 'store_unavailable',
    subject: key,
    remedy:
      'check that the S3 endpoint is up and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) may write the bucket',
    cause: err,
  });
}

function unquoted(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** The bucket as the store uses it: keys are relative to the prefix. */
export class ObjectBucket {
  readonly client: S3Client;
  readonly #partBytes: number;
  /** Bounds the PUT and part requests in flight, whoever sends them. */
  readonly #requests: Semaphore;
  /** Multipart uploads this process has under way: never aborted as leftovers. */
  readonly #uploading = new Set<string>();

  constructor(private readonly options: ObjectBucketOptions) {
    // The pinned SDK runs on Node 20; its start-up warning is about releases after January 2027,
    // and ten lines of it on every gateway start bury the gateway's own lines. An operator who
    // wants it sets the variable to false.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      region: options.region ?? 'us-east-1',
      // RGW and most S3-compatible endpoints on a plain address take bucket names in the path.
      forcePathStyle: options.endpoint !== undefined,
      maxAttempts: 5,
      // The SDK's default (WHEN_SUPPORTED) adds a CRC32 of every PUT and part, and checks one on
      // every GET that carries it: as much CPU again as the payload hash. Every record in a
      // segment carries its own AES-GCM tag and every point its catalog entry, checked on each
      // read; DeleteObjects, which S3 requires a checksum on, still gets one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    if (!signsPayload(options.endpoint))
      this.client.middlewareStack.add(
        (next, context) => async (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (BODY_COMMANDS.has(context.commandName ?? '') && request.headers)
            request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
          return next(args);
        },
        { step: 'build', name: 'lifeboatUnsignedPayload' },
      );
    this.#partBytes = options.partBytes ?? 16 * 1024 * 1024;
    this.#requests = new Semaphore(options.requestsAtOnce ?? 4);
  }

  /** `s3://bucket/prefix`, for messages. */
  get url(): string {
    return `s3://${this.options.bucket}${this.options.prefix ? `/${this.options.prefix}` : ''}`;
  }

  key(relative: string): string {
    return this.options.prefix ? `${this.options.prefix}/${relative}` : relative;
  }

  /** Fails with a clear error when the bucket cannot be reached, is missing or refuses the credentials. */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (err) {
      const status = statusOf(err);
      // HEAD answers carry no body, so the SDK names a refusal only by its status.
      const [problem, remedy] =
        status === 404
          ? [
              'the bucket does not exist',
              'create the bucket first (e.g. `aws s3 mb`), or fix gateway.store',
            ]
          : status === 403 || status === 401
            ? [
                `the endpoint refused the credentials (HTTP ${status})`,
                'check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that this key may read and write the bucket',
              ]
            : [
                `cannot reach the bucket (${errorMessage(err)})`,
                'check AWS_ENDPOINT_URL_S3 (or gateway.s3.endpoint), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
              ];
      throw new DrError(`object store ${this.url}: ${problem}`, {
        code: 'store_unavailable',
        subject: this.url,
        remedy,
        cause: err,
      });
    }
  }

  /** Writes one object; a large one as a multipart upload of bounded parts. */
  async put(relative: string, body: Buffer): Promise<void> {
    const Key = this.key(relative);
    const Bucket = this.options.bucket;
    if (body.length <= this.#partBytes) {
      try {
        await this.#requests.run(() =>
          this.client.send(new PutObjectCommand({ Bucket, Key, Body: body })),
        );
      } catch (err) {
        throw failed('PUT', Key, err);
      }
      return;
    }
    await this.#multipart(Key, body);
  }

  /**
   * Writes a small object only if it is still the version `expected` names (its ETag), or, with
   * `expected` undefined, only if there is none: the answer is its new ETag, or 'conflict' when
   * someone else wrote it meanwhile. RGW 16 compares If-Match without the quotes, which S3
   * accepts too. An endpoint without conditional PUT (Alibaba OSS answers NotImplemented) gets
   * a plain PUT from then on: `conditional` says which, and the caller's own check must fence.
   */
  async putIf(
    relative: string,
    body: Buffer,
    expected: string | undefined,
  ): Promise<string | 'conflict'> {
    const Key = this.key(relative);
    const Bucket = this.options.bucket;
    const condition =
      expected === undefined ? { IfNoneMatch: '*' } : { IfMatch: unquoted(expected) };
    try {
      const out = await this.client.send(
        new PutObjectCommand({ Bucket, Key, Body: body, ...(this.conditional ? condition : {}) }),
      );
      return unquoted(out.ETag ?? '');
    } catch (err) {
      if (statusOf(err) === 412) return 'conflict';
      if (this.conditional && (err as { name?: string }).name === 'NotImplemented') {
        this.conditional = false;
        return this.putIf(relative, body, expected);
      }
      throw failed('conditional PUT', Key, err);
    }
  }

  /** Whether the endpoint honours If-Match / If-None-Match on PUT (until it says it does not). */
  conditional = true;

  async #multipart(Key: string, body: Buffer): Promise<void> {
    const Bucket = this.options.bucket;
    let UploadId: string | undefined;
    try {
      UploadId = (await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key })))
        .UploadId;
      if (UploadId) this.#uploading.add(UploadId);
      // The parts go up at once, as many as the request slots allow.
      const parts = await Promise.all(
        Array.from({ length: Math.ceil(body.length / this.#partBytes) }, (_, i) =>
          this.#requests.run(async () => {
            const part = await this.client.send(
              new UploadPartCommand({
                Bucket,
                Key,
                UploadId,
                PartNumber: i + 1,
                Body: body.subarray(i * this.#partBytes, (i + 1) * this.#partBytes),
              }),
            );
            return { ETag: part.ETag ?? '', PartNumber: i + 1 };
          }),
        ),
      );
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
      // RGW answers CompleteMultipartUpload with an empty ETag: HeadObject says the object is there.
      const head = await this.client.send(new HeadObjectCommand({ Bucket, Key }));
      if (head.ContentLength !== body.length)
        throw new Error(`stored ${head.ContentLength} bytes of ${body.length}`);
    } catch (err) {
      if (UploadId)
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }))
          .catch(() => undefined); // abortLeftovers removes it at the next start or collection
      throw failed('multipart upload of', Key, err);
    } finally {
      if (UploadId) this.#uploading.delete(UploadId);
    }
  }

  /**
   * Aborts the multipart uploads under `relativePrefix` that this process has not under way: those
   * a crash (or a failed abort) left, whose parts the bucket keeps and bills until aborted. Only
   * the holder of the prefix's app may call it. Answers how many it aborted.
   */
  async abortLeftovers(relativePrefix: string): Promise<number> {
    const Prefix = this.key(relativePrefix);
    const Bucket = this.options.bucket;
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket, Prefix, KeyMarker, UploadIdMarker }),
        );
        for (const { Key, UploadId } of page.Uploads ?? []) {
          if (!Key || !UploadId || this.#uploading.has(UploadId)) continue;
          try {
            await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
            aborted++;
          } catch (err) {
            if (statusOf(err) !== 404) throw err; // 404: completed or aborted meanwhile
          }
        }
        [KeyMarker, UploadIdMarker] = page.IsTruncated
          ? [page.NextKeyMarker, page.NextUploadIdMarker]
          : [undefined, undefined];
      } while (KeyMarker);
    } catch (err) {
      throw failed('abort of the multipart uploads left under', Prefix, err);
    }
    return aborted;
  }

  /** An object's bytes, or a range of them; undefined when there is no such object. */
  async get(
    relative: string,
    range?: { offset: number; length: number },
  ): Promise<Buffer | undefined> {
    return (await this.getTagged(relative, range))?.body;
  }

  /** An object's bytes (or a range) with its ETag (unquoted); undefined when there is none. */
  async getTagged(
    relative: string,
    range?: { offset: number; length: number },
  ): Promise<{ body: Buffer; etag: string } | undefined> {
    const Key = this.key(relative);
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.options.bucket,
          Key,
          ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
        }),
      );
      const bytes = await out.Body?.transformToByteArray();
      return { body: Buffer.from(bytes ?? new Uint8Array()), etag: unquoted(out.ETag ?? '') };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw failed('GET', Key, err);
    }
  }

  /** Every key under `relativePrefix`, relative to the store's prefix, with sizes. */
  async list(relativePrefix: string): Promise<{ key: string; size: number }[]> {
    const Prefix = this.key(relativePrefix);
    const strip = this.options.prefix ? this.options.prefix.length + 1 : 0;
    const out: { key: string; size: number }[] = [];
    let ContinuationToken: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix, ContinuationToken }),
        );
        for (const o of page.Contents ?? [])
          if (o.Key) out.push({ key: o.Key.slice(strip), size: o.Size ?? 0 });
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (err) {
      throw failed('LIST', Prefix, err);
    }
    return out;
  }

  async delete(relatives: readonly string[]): Promise<void> {
    for (let i = 0; i < relatives.length; i += 1000) {
      const Objects = relatives.slice(i, i + 1000).map((k) => ({ Key: this.key(k) }));
      try {
        const out = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects } }),
        );
        const first = out.Errors?.[0];
        if (first) throw new Error(`${first.Key}: ${first.Message}`);
      } catch (err) {
        throw failed('DELETE', Objects[0]?.Key ?? '', err);
      }
    }
  }

  close(): void {
    this.client.destroy();
  }
}
