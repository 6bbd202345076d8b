import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MeteredStream } from './sample-stream';
import {
  SampleStorage,
  voiceIdOfSampleKey,
  type ListedSample,
  type StoredSample,
} from './sample-storage.port';

export interface S3StorageOptions {
  bucket: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
}

/** Samples in S3 or an S3-compatible store, streamed with multipart upload. */
export class S3SampleStorage extends SampleStorage {
  /** `client` is for tests; by default one is built from the options. */
  constructor(
    private readonly options: S3StorageOptions,
    private readonly client: S3Client = new S3Client({
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
    }),
  ) {
    super();
  }

  async put(key: string, body: Readable, maxBytes: number): Promise<StoredSample> {
    const meter = new MeteredStream(maxBytes);
    const pass = new PassThrough();
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.options.bucket, Key: key, Body: pass },
    });
    const uploaded = upload.done();
    try {
      await Promise.all([pipeline(body, meter, pass), uploaded]);
    } catch (err) {
      // Best effort: whatever stays (an object with no row, unaborted parts) is the orphan
      // sweep's once it is old enough, so the upload's own error is the one reported.
      await upload.abort().catch(() => undefined);
      await this.remove(key).catch(() => undefined);
      throw err;
    }
    return { key, sizeBytes: meter.bytes, sha256: meter.digest() };
  }

  async open(key: string): Promise<Readable> {
    const out = await this.client.send(
      new GetObjectCommand({ Bucket: this.options.bucket, Key: key }),
    );
    if (!(out.Body instanceof Readable)) throw new Error('S3 returned no stream');
    return out.Body;
  }

  async remove(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key }));
  }

  /** One page per ListObjectsV2 call (up to 1,000 keys), following its continuation token. */
  async *listSamples(): AsyncGenerator<ListedSample[]> {
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.options.bucket, ContinuationToken: token }),
      );
      const page: ListedSample[] = [];
      for (const o of out.Contents ?? []) {
        if (o.Key && o.LastModified && voiceIdOfSampleKey(o.Key))
          page.push({ key: o.Key, modifiedAt: o.LastModified });
      }
      if (page.length) yield page;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Aborts multipart uploads of sample keys begun before `before`: a process that died mid-upload
   * leaves its parts stored (and billed) but invisible to listings of objects. A bucket lifecycle
   * rule (AbortIncompleteMultipartUpload) does the same and may be used as well.
   */
  async removeAbandonedWrites(before: Date): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const out = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.options.bucket,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const u of out.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || !voiceIdOfSampleKey(u.Key)) continue;
        if (u.Initiated >= before) continue;
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.options.bucket,
            Key: u.Key,
            UploadId: u.UploadId,
          }),
        );
        removed++;
      }
      const more = out.IsTruncated && (out.NextKeyMarker || out.NextUploadIdMarker);
      keyMarker = more ? out.NextKeyMarker : undefined;
      uploadIdMarker = more ? out.NextUploadIdMarker : undefined;
    } while (keyMarker || uploadIdMarker);
    return removed;
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
  }
}
