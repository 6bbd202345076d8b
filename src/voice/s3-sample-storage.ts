import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MeteredStream } from './sample-stream';
import { SampleStorage, type StoredSample } from './sample-storage.port';

export interface S3StorageOptions {
  bucket: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
}

/** Samples in S3 or an S3-compatible store, streamed with multipart upload. */
export class S3SampleStorage extends SampleStorage {
  private readonly client: S3Client;

  constructor(private readonly options: S3StorageOptions) {
    super();
    this.client = new S3Client({
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
    });
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

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
  }
}
